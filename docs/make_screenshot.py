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

from workbench.app import WorkbenchApp  # noqa: E402
from workbench.config import DEFAULTS  # noqa: E402


async def main() -> None:
    cfg = copy.deepcopy(DEFAULTS)
    cfg["chat"].update(temperature=0.0, max_tokens=80)
    with tempfile.TemporaryDirectory() as d:
        app = WorkbenchApp(db_path=str(Path(d) / "shot.duckdb"), model="smollm2-135m", backend="llamacpp", config=cfg)
        async with app.run_test(size=(150, 40)) as pilot:
            while not app.engine_ready:
                await pilot.pause(0.05)
            for prompt in ("What is a GGUF file?", "Name three uses of DuckDB."):
                app.chat.last_result = None
                app.query_one("#prompt", Input).value = prompt
                app.query_one("#prompt", Input).focus()
                await pilot.press("enter")
                while app.chat.last_result is None:
                    await pilot.pause(0.05)
            await pilot.pause(0.5)
            app.save_screenshot(filename="screenshot.svg", path=str(HERE))
        app.service.close()


if __name__ == "__main__":
    asyncio.run(main())
