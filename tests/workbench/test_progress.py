"""The one-line progress bar shared by `bench` and `import`: drawn only where enabled, throttled,
the final state always shown, kept or wiped at the end."""
from __future__ import annotations

import io
import re

from workbench.progress import WIDTH, ProgressLine

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _frames(raw: str) -> list[str]:
    """The lines as a terminal shows them: one frame per carriage return, escape codes dropped."""
    return [f for f in (ANSI.sub("", part).rstrip("\n") for part in raw.split("\r")) if f.strip()]


def test_progress_line_draws_throttles_and_ends():
    out = io.StringIO()
    line = ProgressLine(enabled=True, stream=out)
    line.draw(1, 4, before="a.jsonl reading ", after=" 1/4")
    first = _frames(out.getvalue())
    assert first and first[-1].startswith("a.jsonl reading") and first[-1].endswith("1/4")
    assert first[-1].count("━") + first[-1].count("╸") + first[-1].count("╺") == WIDTH
    drawn = out.getvalue()
    line.draw(2, 4, after=" 2/4")  # within 0.1 s of the last: skipped
    assert out.getvalue() == drawn
    line.draw(4, 4, after=" 4/4")  # the last one always shows
    assert _frames(out.getvalue())[-1].endswith("4/4")
    line.close(keep=False)
    assert not _frames(out.getvalue()[len(drawn):].rsplit("4/4", 1)[1])  # wiped: nothing after the last frame
    kept = io.StringIO()
    line = ProgressLine(enabled=True, stream=kept)
    line.draw(4, 4, after=" done")
    line.close(keep=True)
    assert ANSI.sub("", kept.getvalue()).endswith("done\n")  # kept: the last frame stays, on its own line
    quiet = io.StringIO()
    off = ProgressLine(enabled=False, stream=quiet)
    off.draw(4, 4)
    off.close()
    assert quiet.getvalue() == ""
    assert ProgressLine(stream=io.StringIO()).enabled is False  # not a terminal
