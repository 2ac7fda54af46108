"""The cache panel in a real Textual app: shows the figures it is fed and follows updates."""
from __future__ import annotations

from textual.app import App, ComposeResult

from panels.cache_panel import CachePanel


class _Host(App):
    def compose(self) -> ComposeResult:
        yield CachePanel(id="cache")


def _text(panel: CachePanel) -> str:
    return str(panel.render())


async def test_cache_panel_shows_and_updates_figures():
    app = _Host()
    async with app.run_test(size=(100, 20)) as pilot:
        panel = app.query_one(CachePanel)
        assert "hit rate -" in _text(panel)
        panel.update_stats({
            "entries": 12, "scopes": 2, "threshold": 0.88, "lookups": 40, "hits": 10, "hit_rate": 0.25,
            "refusals": {"negation": 3, "number": 1}, "near_misses": 5, "near_miss_p50_distance": 0.14,
            "near_miss_min_distance": 0.05, "audits": 4, "audit_differed": 1, "audit_differ_rate": 0.25,
        })
        await pilot.pause()
        text = _text(panel)
        assert "entries 12" in text and "hit rate 25.0%" in text
        assert "negation 3, number 1" in text and "min 0.050" in text
        assert "answer differed 1 (25.0%)" in text
