"""The one-line progress bar shared by `bench` and `import`: drawn only where enabled, throttled,
the final state always shown, kept or wiped at the end."""
from __future__ import annotations

import io

from workbench.progress import ProgressLine


def test_progress_line_draws_throttles_and_ends():
    out = io.StringIO()
    line = ProgressLine(enabled=True, stream=out)
    line.draw(1, 4, before="a.jsonl reading ", after=" 1/4")
    assert out.getvalue().startswith("\ra.jsonl reading [" + "#" * 7 + "." * 23 + "] 1/4")
    line.draw(2, 4)  # within 0.1 s of the last: skipped
    assert out.getvalue().count("\r") == 1
    line.draw(4, 4)  # the last one always shows
    assert out.getvalue().count("\r") == 2 and "#" * 30 in out.getvalue()
    line.close(keep=False)
    assert out.getvalue().endswith("\r\033[K")
    quiet = io.StringIO()
    off = ProgressLine(enabled=False, stream=quiet)
    off.draw(4, 4)
    off.close()
    assert quiet.getvalue() == ""
    assert ProgressLine(stream=io.StringIO()).enabled is False  # not a terminal
