"""The sessions panel: recorded sessions, newest first; selecting one reopens it."""
from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import DataTable, Label

from panels.messages import SessionSelected


class SessionsPanel(Widget):
    DEFAULT_CSS = """
    SessionsPanel { layout: vertical; }
    SessionsPanel DataTable { height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Label("sessions", classes="panel-title")
        table: DataTable = DataTable(id="sessions-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("when", "title", "p50 ttft")
        yield table

    def focus(self, scroll_visible: bool = True) -> SessionsPanel:
        """The panel itself takes no focus: its table does."""
        self.query_one(DataTable).focus(scroll_visible)
        return self

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        table = self.query_one(DataTable)
        table.clear()
        for r in rows:
            when = r["created_at"].strftime("%m-%d %H:%M") if r.get("created_at") else "-"
            ttft = "-" if r.get("p50_ttft_ms") is None else f"{r['p50_ttft_ms']:.0f} ms"
            table.add_row(when, (r.get("title") or r["kind"])[:28], ttft, key=r["id"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value:
            self.post_message(SessionSelected(str(event.row_key.value)))
