"""Textual widgets, one panel per file, fed by messages or read-only query results; no model
code, no DuckDB, no blocking calls."""
