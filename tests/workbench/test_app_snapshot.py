"""The main layout as an SVG snapshot: the app as it first paints, on a real DuckDB file, before
its model is loaded, so nothing measured on this machine is in the picture."""
import copy
from pathlib import Path

from textual import work
from textual.widgets import Input

import workbench.app
from tests.workbench.helpers import settle, wait_for
from workbench.app import WorkbenchApp
from workbench.config import DEFAULTS


class FirstPaint(WorkbenchApp):
    """The app while its model loads: the store is open and the sessions listed; the model never
    comes, so the engine panel, the title and the footer stay as a user first sees them."""

    CSS_PATH = str(Path(workbench.app.__file__).with_name(WorkbenchApp.CSS_PATH))  # a relative one resolves here

    @work(thread=True, exclusive=True, group="startup", exit_on_error=False)
    def start_services(self) -> None:
        self.service.open_store()
        self.call_from_thread(self.refresh_sessions)


def test_main_layout(snap_compare, db_path):
    app = FirstPaint(db_path=db_path, model="smollm2-135m", backend="llamacpp", config=copy.deepcopy(DEFAULTS))

    async def first_paint(pilot):
        await wait_for(pilot, lambda: app.service.store is not None, timeout=60, what="the store to open")
        await settle(pilot)
        app.query_one("#prompt", Input).cursor_blink = False  # a steady cursor: the picture cannot catch it mid-blink

    try:
        assert snap_compare(app, terminal_size=(140, 40), run_before=first_paint)
    finally:
        app.service.close()
    assert app.service.engine is None  # the picture is of the app before any model
