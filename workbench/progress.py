"""One redrawn progress line on stderr for long CLI commands (bench runs, big trace imports):
throttled to ten redraws a second, silent when stderr is not a terminal."""
from __future__ import annotations

import sys
import time

WIDTH = 30


class ProgressLine:
    def __init__(self, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self._last = 0.0

    def draw(self, done: float, total: float, before: str = "", after: str = "") -> None:
        """`before [####......] after`, the bar filled to done/total; the last one always shows."""
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.1 and done < total):
            return
        self._last = now
        filled = int(WIDTH * min(1.0, done / total)) if total > 0 else 0
        self.stream.write(f"\r{before}[{'#' * filled}{'.' * (WIDTH - filled)}]{after}\033[K")
        self.stream.flush()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def close(self, keep: bool = True) -> None:
        """End the line: keep it (a final figure) or wipe it."""
        if self.enabled:
            self.stream.write("\n" if keep else "\r\033[K")
            self.stream.flush()
