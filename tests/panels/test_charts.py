"""The Runs tab's terminal charts, read back cell by cell."""
from panels.charts import BLOCKS, braille_cdf, histogram, timeline


def _dots(ch: str) -> int:
    return ord(ch) - 0x2800


def test_cdf_rises_from_bottom_left_to_top_right():
    lines = braille_cdf([10.0, 20.0, 30.0, 40.0], width=20, height=4).plain.splitlines()
    plot = [line[4:] for line in lines[:4]]
    assert all(len(row) == 20 for row in plot)
    assert _dots(plot[3][0]) and not _dots(plot[0][0])  # starts low: few samples below the smallest x
    assert _dots(plot[0][-1]) and not _dots(plot[3][-1])  # ends at 1.0
    assert lines[4].rstrip().endswith("40 ms")


def test_histogram_bars_are_as_tall_as_their_counts():
    # 3 samples near 0, 1 near the top: the first bar is full height, the last a third of it
    lines = histogram([0.1, 0.1, 0.1, 9.9], bins=10, height=3).plain.splitlines()
    bars = [line[6:] for line in lines[:3]]
    column = lambda i: "".join(row[i] for row in bars)  # noqa: E731
    assert column(0) == "███"
    assert column(9) == "  █"
    assert set(column(5)) == {" "}
    assert lines[0].startswith("    3")


def test_timeline_marks_waiting_then_streaming():
    text = timeline([(0.0, 50.0, 100.0), (50.0, None, 100.0)], width=10).plain.splitlines()
    assert text[0][5:] == "░░░░░█████"
    assert text[1][5:].strip() == "░░░░░"  # never got a first token: waiting to the end
    assert BLOCKS[-1] == "█"
