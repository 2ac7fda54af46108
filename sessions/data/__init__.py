"""Data shipped with the sessions room: labelled sets used by evaluations (e.g. the semantic
cache's paraphrase / near-miss pairs)."""
