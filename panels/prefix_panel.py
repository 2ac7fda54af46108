"""The prefix-cache panel: for recent torch-engine requests, which KV blocks hit, where the first
miss was and what broke the match; fed plain (request_id, prefix_report) pairs, never the engine."""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.widgets import Static

from engine.torch.prefix_inspector import describe

MAX_ROWS = 8
BAR_WIDTH = 40


def block_bar(report: dict[str, Any], width: int = BAR_WIDTH) -> str:
    """One character per block (scaled down past `width`): hit, first miss, not reached."""
    total = report.get("blocks_queried") or 0
    if not total:
        return ""
    hit, miss = report.get("blocks_hit", 0), report.get("first_miss_block")
    cells = []
    for i in range(min(total, width)):
        b = i * total // min(total, width)  # the block this cell stands for
        cells.append("[green]█[/green]" if b < hit else "[red]✗[/red]" if b == miss else "[dim]·[/dim]")
    return "".join(cells)


def render_prefix_reports(rows: list[tuple[str, dict[str, Any] | None]]) -> str:
    """Rich markup for the newest MAX_ROWS requests that have a report."""
    rows = [(rid, rep) for rid, rep in rows if rep][-MAX_ROWS:]
    if not rows:
        return "[b]prefix cache[/b]\nno torch-engine requests yet"
    hit = sum(r["blocks_hit"] for _, r in rows)
    queried = sum(r["blocks_queried"] for _, r in rows)
    lines = [f"[b]prefix cache[/b]  {hit}/{queried} blocks hit over the last {len(rows)} requests"]
    for rid, rep in rows:
        lines.append(f"{escape(rid[:12])} {block_bar(rep)}")
        lines.append("  " + escape(describe(rep).removeprefix("prefix cache: ")))
    return "\n".join(lines)


class PrefixPanel(Static):
    """Call `update_reports(rows)` from the UI thread with (request_id, prefix_report) pairs, e.g.
    from RequestFinished events (result.metrics.prefix_report) or `sessions.queries.get_session`."""

    DEFAULT_CSS = """
    PrefixPanel { height: auto; }
    """

    def __init__(self, rows: list[tuple[str, dict[str, Any] | None]] | None = None, **kwargs: Any):
        self.rows = list(rows or [])
        super().__init__(render_prefix_reports(self.rows), **kwargs)
        self.border_title = "prefix cache"

    def update_reports(self, rows: list[tuple[str, dict[str, Any] | None]]) -> None:
        rows = list(rows)
        if rows == self.rows:
            return  # nothing new: skip the repaint
        self.rows = rows
        self.update(render_prefix_reports(self.rows))
