"""The semantic cache panel: entries, hit rate, guard refusals, near misses and audits, drawn
from a plain stats dict (SemanticCache.stats() or CacheStore.stats()); never touches the cache."""
from __future__ import annotations

from typing import Any

from textual.widgets import Static


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def render_cache_stats(st: dict[str, Any]) -> str:
    """Rich markup for a stats dict; missing keys show as '-'."""
    g = st.get
    refusals = g("refusals") or {}
    lines = [
        "[b]semantic cache[/b]" + (f"  threshold {_num(g('threshold'), 2)}" if g("threshold") is not None else ""),
        f"entries {g('entries', 0)} · scopes {g('scopes', '-')}",
        f"lookups {g('lookups', 0)} · hits {g('hits', 0)} · hit rate [b]{_pct(g('hit_rate'))}[/b]",
        f"near misses {g('near_misses', 0)} · p50 distance {_num(g('near_miss_p50_distance'))}"
        f" · min {_num(g('near_miss_min_distance'))}",
        "refused: " + (", ".join(f"{k} {v}" for k, v in refusals.items()) or "none"),
        f"audits {g('audits', 0)} · answer differed {g('audit_differed', 0)} ({_pct(g('audit_differ_rate'))})",
    ]
    if g("p50_lookup_ms") is not None:
        lines.append(f"p50 lookup {_num(g('p50_lookup_ms'), 1)} ms")
    return "\n".join(lines)


class CachePanel(Static):
    """Call `update_stats(stats)` from the UI thread (e.g. on the app's refresh timer)."""

    DEFAULT_CSS = """
    CachePanel { height: auto; }
    """

    def __init__(self, stats: dict[str, Any] | None = None, **kwargs: Any):
        self.stats: dict[str, Any] = dict(stats or {})
        super().__init__(render_cache_stats(self.stats), **kwargs)
        self.border_title = "cache"

    def update_stats(self, stats: dict[str, Any]) -> None:
        if stats == self.stats:
            return  # nothing new: skip the repaint
        self.stats = dict(stats)
        self.update(render_cache_stats(self.stats))
