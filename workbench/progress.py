"""One redrawn progress line on stderr for long CLI commands (bench runs, big trace imports), drawn by
rich's progress bar: throttled to ten redraws a second, silent when stderr is not a terminal."""
from __future__ import annotations

import sys
import time

WIDTH = 30


class ProgressLine:
    """`before [bar] after`, filled to done/total. rich is imported on the first draw, so a command
    that never draws (small files, a pipe) pays nothing for it."""

    def __init__(self, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self._last = 0.0
        self._progress = None
        self._task = None

    def _open(self):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        console = Console(file=self.stream, force_terminal=True, width=max(80, WIDTH + 120), highlight=False)
        self._progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(bar_width=WIDTH),
                                  TextColumn("{task.fields[after]}", markup=False),
                                  console=console, auto_refresh=False, transient=True)
        self._progress.start()
        self._task = self._progress.add_task("", total=1, after="")
        return self._progress

    def draw(self, done: float, total: float, before: str = "", after: str = "") -> None:
        """Redraw the line; within 0.1 s of the last redraw only the final state (done >= total) shows."""
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.1 and done < total):
            return
        progress = self._progress or self._open()
        progress.update(self._task, completed=min(done, total) if total > 0 else 0, total=max(total, 1e-9),
                        description=before, after=after)
        progress.refresh()
        self._last = time.monotonic()  # after the draw: the first one imports rich

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def close(self, keep: bool = True) -> None:
        """End the line: keep it on screen (a final figure) or wipe it."""
        if self._progress is None:
            return
        self._progress.live.transient = not keep
        self._progress.stop()
        self._progress = None
