"""Textual widgets, one per file named after its class (ChatPanel in chat_panel.py), fed by messages
or read-only query results; no model code, no DuckDB, no blocking calls."""
