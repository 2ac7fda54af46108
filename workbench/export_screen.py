"""The export dialog: the user types where a run's report goes and picks its format (by default
from the file's extension, as `workbench report --out` does). Returns (path, format) or None."""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

FORMATS = (("from the extension", "auto"), ("HTML", "html"), ("Markdown", "md"), ("JSON", "json"), ("CSV", "csv"))


class ExportScreen(ModalScreen[tuple[str, str] | None]):
    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    ExportScreen #export-box { width: 80; height: auto; border: round $primary; padding: 1 2; background: $surface; }
    ExportScreen #export-buttons { height: auto; margin: 1 0 0 0; }
    ExportScreen Select { width: 30; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="export_cancel", tooltip="Close without writing anything")]

    def __init__(self, run_id: str, default_path: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.default_path = default_path

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Label(f"Export run {self.run_id} to:")
            yield Input(self.default_path, id="export-path", placeholder="path/to/report.html")
            yield Select(FORMATS, value="auto", allow_blank=False, id="export-format")
            with Horizontal(id="export-buttons"):
                yield Button("Export", id="export-ok", variant="primary")
                yield Button("Cancel", id="export-no")

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    def _submit(self) -> None:
        path = self.query_one("#export-path", Input).value.strip()
        if path:
            self.dismiss((path, str(self.query_one("#export-format", Select).value)))

    @on(Input.Submitted, "#export-path")
    def submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "export-ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
