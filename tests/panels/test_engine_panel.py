"""The engine panel in a real Textual app: the cold-start stages from Engine.stats()."""
from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Static

from panels.engine_panel import EnginePanel, cold_start_line


class _Host(App):
    def compose(self) -> ComposeResult:
        yield EnginePanel(id="engine")


async def test_engine_panel_shows_cold_start_by_stage():
    app = _Host()
    async with app.run_test(size=(110, 30)) as pilot:
        panel = app.query_one(EnginePanel)
        panel.set_stats({"attention": "Triton paged attention in CUDA graphs",
                         "cold_start_ms": {"convert": 3.0, "load": 1900.0, "kv_cache": 12.0, "bandwidth": 40.0,
                                           "graph_capture": 450.0, "first_token": 95.0}})
        await pilot.pause()
        text = str(panel.query_one("#engine-state", Static).render())
        assert "cold start 2.5 s: convert 3 ms · load 1.9 s · KV cache 12 ms · bandwidth 40 ms" in text
        assert "graphs 450 ms · first token 95 ms" in text


def test_cold_start_line_leaves_out_stages_that_did_not_happen():
    assert cold_start_line({"load": 20.0, "graph_capture": 0.0}) == "cold start 20 ms: load 20 ms · graphs 0 ms"
    assert cold_start_line(None) == "" and cold_start_line({}) == ""
