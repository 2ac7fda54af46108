"""Pilot helpers for the app tests: wait on a condition or on the workers, never a fixed sleep."""
from __future__ import annotations

import asyncio
from typing import Callable

from textual.pilot import Pilot
from textual.widgets import Input


async def wait_for(pilot: Pilot, predicate: Callable[[], object], timeout: float = 120.0, what: str = "") -> None:
    """Let the app run until `predicate()` is true; fail after `timeout` seconds saying what was awaited.
    Each round is one `pilot.pause()`: the app's queues drain, and it sleeps while the app is busy."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            code = getattr(predicate, "__code__", None)
            where = f"{code.co_filename}:{code.co_firstlineno}" if code is not None else repr(predicate)
            raise AssertionError(f"waited {timeout:g} s for {what or 'the condition at ' + where}; it never held")
        await pilot.pause()


async def settle(pilot: Pilot, timeout: float = 120.0) -> None:
    """No worker is left, a worker started by another one included, and what they posted is handled."""
    workers = pilot.app.workers
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while workers:
        left = end - loop.time()
        try:
            await asyncio.wait_for(workers.wait_for_complete(), timeout=max(left, 0.01))
        except TimeoutError:
            raise AssertionError(f"workers still running after {timeout:g} s: {[w.name for w in workers]}") from None
        await pilot.pause()  # their done-callbacks take them off the list
    await pilot.pause()


async def send(pilot: Pilot, app, text: str) -> None:
    """Type `text` into the prompt box and press enter, as a user would."""
    app.query_one("#prompt", Input).focus()
    await pilot.press(*[("space" if c == " " else c) for c in text])
    await pilot.press("enter")
