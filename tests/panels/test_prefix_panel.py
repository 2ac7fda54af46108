"""The prefix-cache panel in a real Textual app: block bar, first miss and cause from plain reports."""
from __future__ import annotations

from textual.app import App, ComposeResult

from engine.torch.prefix_inspector import PrefixInspector
from panels.prefix_panel import PrefixPanel, block_bar


class _Host(App):
    def compose(self) -> ComposeResult:
        yield PrefixPanel(id="prefix")


def _reports():
    insp = PrefixInspector(block_size=4, decode=lambda ids: ":".join(map(str, ids)))
    a = insp.admit("req-a", list(range(100, 140)), [])
    b = insp.admit("req-b", list(range(100, 130)) + [9] + list(range(131, 140)), list(range(7)))
    return [("req-a", a), ("req-b", b), ("req-c", None)]


def test_block_bar_marks_hits_and_the_first_miss():
    (_, _), (_, b), _ = _reports()
    bar = block_bar(b)
    assert bar.count("█") == 7 and bar.count("✗") == 1 and bar.count("·") == 1


async def test_prefix_panel_shows_reports_and_follows_updates():
    app = _Host()
    async with app.run_test(size=(120, 24)) as pilot:
        panel = app.query_one(PrefixPanel)
        assert "no torch-engine requests yet" in str(panel.render())
        panel.update_reports(_reports())
        await pilot.pause()
        text = str(panel.render())
        assert "7/18 blocks hit over the last 2 requests" in text
        assert "7/9 blocks hit; first miss at token 28: differs from request req-a at token 30" in text
        assert "'...124:125:126:127:128:129:130:131:132:133:134:135...'" in text
