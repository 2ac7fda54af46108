"""Agent traces: a normalized model (Trace -> Span tree with OTel GenAI attributes), importers
for common formats, DuckDB storage, N+1/redundant/loop detection and replay."""
