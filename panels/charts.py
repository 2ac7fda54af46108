"""Terminal charts of a bench run: the TTFT CDF in braille dots, the ITL histogram in block
bars, and a per-request timeline. Pure functions that return rich Text, and one Static to show them."""
from __future__ import annotations

import math
from typing import Any, Sequence

from rich.text import Text
from textual.widgets import Static

BLOCKS = " ▁▂▃▄▅▆▇█"
# braille dot bits: column 0 rows 0-3, column 1 rows 0-3 (Unicode's dot numbering 1,2,3,7 and 4,5,6,8)
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))


def _fmt(v: float) -> str:
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def _top(values: Sequence[float]) -> float:
    top = max(values, default=0.0)
    return top if top > 0 and math.isfinite(top) else 1.0


def braille_cdf(values: Sequence[float], width: int = 48, height: int = 6, label: str = "ms") -> Text:
    """The empirical CDF of `values` as a step line: x from 0 to the largest value, y from 0 to 1.
    Each character holds 2 x 4 dots, so the plot is 2*width by 4*height dots."""
    text = Text()
    xs = sorted(v for v in values if v is not None and math.isfinite(v))
    if not xs:
        return Text("no samples", style="dim")
    top = _top(xs)
    w, h = width * 2, height * 4
    grid = [[0] * width for _ in range(height)]
    n = len(xs)
    k = 0
    for px in range(w):
        x = (px + 1) / w * top
        while k < n and xs[k] <= x:
            k += 1
        py = min(h - 1, int(k / n * (h - 1) + 0.5))  # 0 at the bottom
        row = height - 1 - py // 4
        grid[row][px // 2] |= _DOTS[3 - py % 4][px % 2]
    for r, cells in enumerate(grid):
        text.append("1.0 " if r == 0 else "0.0 " if r == height - 1 else "    ", style="dim")
        text.append("".join(chr(0x2800 + c) for c in cells), style="red")
        text.append("\n")
    text.append(f"    0{' ' * (width - len(_fmt(top)) - 1)}{_fmt(top)} {label}", style="dim")
    return text


def histogram(values: Sequence[float], bins: int = 40, height: int = 5, label: str = "ms") -> Text:
    """Counts in `bins` equal bins from 0 to the 99th percentile (the last bin also holds what is
    above it, so one slow gap does not squash the rest), as bars `height` rows tall."""
    xs = sorted(v for v in values if v is not None and math.isfinite(v))
    if not xs:
        return Text("no samples", style="dim")
    top = _top([xs[min(len(xs) - 1, int(0.99 * (len(xs) - 1) + 0.5))]])
    counts = [0] * bins
    for v in xs:
        counts[min(bins - 1, max(0, int(v / top * bins)))] += 1
    peak = max(counts)
    text = Text()
    for r in range(height):
        level = height - 1 - r  # rows from the top
        line = []
        for c in counts:
            fill = c / peak * height - level  # how much of this row the bar covers
            line.append(BLOCKS[min(8, max(0, math.ceil(fill * 8)))] if fill > 0 else " ")
        text.append(f"{peak if r == 0 else '':>5} ", style="dim")
        text.append("".join(line), style="green")
        text.append("\n")
    text.append(f"      0{' ' * (bins - len(_fmt(top)) - 1)}{_fmt(top)} {label}", style="dim")
    return text


def timeline(rows: Sequence[tuple[float, float | None, float]], width: int = 60, max_rows: int = 12) -> Text:
    """One line per request, from its arrival (offsets in ms): ░ while it waits for the first token,
    █ while it streams. More requests than `max_rows` are sampled evenly."""
    rows = [r for r in rows if r[2] is not None]
    if not rows:
        return Text("no finished requests", style="dim")
    shown = rows if len(rows) <= max_rows else [rows[int(i * len(rows) / max_rows)] for i in range(max_rows)]
    top = _top([r[2] for r in rows])
    text = Text()

    def col(t: float) -> int:
        return min(width, max(0, int(t / top * width + 0.5)))

    for i, (arrival, first, finish) in enumerate(shown):
        a, b, c = col(arrival), col(first if first is not None else finish), col(finish)
        b, c = max(a, b), max(b, c)
        if c == a:
            c = min(width, a + 1)
        text.append(f"{i:>4} ", style="dim")
        text.append(" " * a)
        text.append("░" * (b - a), style="blue")
        text.append("█" * (c - b), style="bright_blue")
        text.append(" " * (width - c) + "\n")
    note = f" ({len(shown)} of {len(rows)})" if len(shown) < len(rows) else ""
    text.append(f"     0{' ' * (width - len(_fmt(top)) - 1)}{_fmt(top)} ms{note}", style="dim")
    return text


class Chart(Static):
    """A titled chart; `show(title, text)` replaces it. Kept as a Static so it sizes to its text."""

    DEFAULT_CSS = """
    Chart { height: auto; margin: 0 0 1 0; }
    """

    def __init__(self, title: str = "", **kw: Any) -> None:
        super().__init__("", **kw)
        self.title = title
        self.chart = Text()

    def show(self, chart: Text, title: str | None = None) -> None:
        if title is not None:
            self.title = title
        self.chart = chart
        out = Text(self.title + "\n", style="bold")
        out.append_text(chart)
        self.update(out)
