"""The traces panel: imported agent traces, one row each; selecting one posts TraceSelected so the
app opens it in the trace inspector."""
from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import DataTable

from panels.messages import TraceSelected


class TracesPanel(Widget):
    DEFAULT_CSS = """
    TracesPanel { layout: vertical; }
    TracesPanel DataTable { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        table: DataTable = DataTable(id="traces-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("imported", "format", "name", "spans", "llm", "tools", "duration", "id")
        yield table

    def focus(self, scroll_visible: bool = True) -> TracesPanel:
        """The panel itself takes no focus: its table does."""
        self.query_one(DataTable).focus(scroll_visible)
        return self

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        """rows: sessions.traces.store.list_traces()."""
        self.rows = rows
        table = self.query_one(DataTable)
        table.clear()
        for r in rows:
            when = r["imported_at"].strftime("%m-%d %H:%M") if r.get("imported_at") else "-"
            dur = (f"{r['duration_ms']:.0f} ms" if r.get("duration_ms") is not None
                   else "steps only" if r.get("has_timings") else "no timings")  # SWE-agent: durations, no start times
            table.add_row(when, r["format"], (r.get("name") or "")[:40], r["spans"], r["llm_calls"], r["tool_calls"],
                          dur, r["id"], key=r["id"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.post_message(TraceSelected(str(event.row_key.value)))
