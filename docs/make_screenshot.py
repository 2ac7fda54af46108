"""Regenerate docs/screenshot.svg: the real app on the embedded model, one short exchange.

    python docs/make_screenshot.py
"""
from __future__ import annotations

import asyncio
import copy
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from textual.widgets import Input  # noqa: E402

from tests.workbench.helpers import settle, wait_for  # noqa: E402
from workbench.app import WorkbenchApp  # noqa: E402
from workbench.config import DEFAULTS  # noqa: E402


async def main() -> None:
    cfg = copy.deepcopy(DEFAULTS)
    cfg["chat"].update(temperature=0.0, max_tokens=80)
    with tempfile.TemporaryDirectory() as d:
        app = WorkbenchApp(db_path=str(Path(d) / "shot.duckdb"), model="smollm2-135m", backend="llamacpp", config=cfg)
        async with app.run_test(size=(150, 40)) as pilot:
            await wait_for(pilot, lambda: app.engine_ready, timeout=300, what="the model to load")
            for prompt in ("What is a GGUF file?", "Name three uses of DuckDB."):
                app.chat.last_result = None
                app.query_one("#prompt", Input).value = prompt
                app.query_one("#prompt", Input).focus()
                await pilot.press("enter")
                await wait_for(pilot, lambda: app.chat.last_result is not None, timeout=300, what="the reply")
            await settle(pilot)  # the sessions list and the semantic cache have caught up
            app.save_screenshot(filename="screenshot.svg", path=str(HERE))
        app.service.close()


if __name__ == "__main__":
    asyncio.run(main())
