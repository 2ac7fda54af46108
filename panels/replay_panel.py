"""A trace replayed on the loaded engine, beside the original: one row per LLM call (TTFT, e2e,
tokens, original | replayed) and the totals, filled in as each call finishes; then where the p95 goes."""
from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, ProgressBar, Static

from panels.latency_view import LatencyView

COLUMNS = ("step", "span", "ttft orig", "ttft replay", "e2e orig", "e2e replay", "out tok orig", "out tok replay",
           "prompt tok", "finish")


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}"


def _n(v: Any) -> str:
    return "-" if v is None else str(v)


def totals(steps: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """Sums over the calls, each side counting only the calls it has a figure for (a format without
    timings leaves the original side empty, not zero)."""
    def total(key: str) -> float | int | None:
        vals = [s[key] for s in steps if s.get(key) is not None]
        return sum(vals) if vals else None

    keys = ("original_ttft_ms", "replayed_ttft_ms", "original_e2e_ms", "replayed_e2e_ms", "original_output_tokens",
            "output_tokens", "prompt_tokens")
    return {k: total(k) for k in keys}


class ReplayPanel(Widget):
    DEFAULT_CSS = """
    ReplayPanel { layout: vertical; }
    ReplayPanel #replay-head { height: 1; }
    ReplayPanel #replay-progress { width: 30; }
    ReplayPanel #replay-table { height: auto; max-height: 12; }
    ReplayPanel #replay-latency-scroll { height: auto; max-height: 10; }
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.trace_id: str | None = None
        self.steps: list[dict[str, Any]] = []
        self.result: dict[str, Any] | None = None
        self.running = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="replay-head"):
            yield ProgressBar(total=None, show_eta=False, id="replay-progress")
            yield Static("ctrl+t replays the selected trace on the loaded engine", id="replay-status")
        table: DataTable = DataTable(id="replay-table", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        with VerticalScroll(id="replay-latency-scroll"):
            yield LatencyView(id="replay-latency")

    def set_status(self, text: str | Text) -> None:
        self.query_one("#replay-status", Static).update(text)

    def start(self, trace_id: str, total: int) -> None:
        self.trace_id, self.steps, self.result, self.running = trace_id, [], None, True
        self.query_one("#replay-progress", ProgressBar).update(total=max(total, 1), progress=0)
        self.query_one("#replay-table", DataTable).clear()
        self.set_status(f"replaying trace {trace_id}: {total} LLM call(s) · f12 stops")

    def add_step(self, step: dict[str, Any], done: int, total: int) -> None:
        self.steps.append(step)
        self.query_one("#replay-progress", ProgressBar).update(total=max(total, 1), progress=done)
        self.set_status(f"replaying trace {self.trace_id}: {done}/{total} call(s)")
        self._rows()

    def finish(self, result: dict[str, Any] | None, error: str | None = None) -> None:
        self.running = False
        if error:
            self.set_status(Text(f"replay failed: {error}", style="bold red"))
            return
        assert result is not None
        self.result = result
        self.steps = result["steps"]
        self._rows()
        bar = self.query_one("#replay-progress", ProgressBar)
        bar.update(total=max(len(self.steps), 1), progress=len(self.steps))
        how = "stopped" if result.get("stopped") else "replayed"
        skipped = f" · {len(result['skipped_span_ids'])} call(s) skipped: no input kept" if result.get("skipped_span_ids") else ""
        self.set_status(f"{how} {len(self.steps)} call(s) of trace {result['trace_id']} on {result['model']} "
                        f"({result['backend']}) as session {result['session_id']}{skipped}")

    def _rows(self) -> None:
        table = self.query_one("#replay-table", DataTable)
        table.clear()
        for s in self.steps:
            table.add_row(s["step"], s["span_id"][:16], _ms(s.get("original_ttft_ms")), _ms(s.get("replayed_ttft_ms")),
                          _ms(s.get("original_e2e_ms")), _ms(s.get("replayed_e2e_ms")), _n(s.get("original_output_tokens")),
                          _n(s.get("output_tokens")), _n(s.get("prompt_tokens")), s.get("error") or s.get("finish_reason") or "")
        if self.steps:
            t = totals(self.steps)
            table.add_row("total", f"{len(self.steps)} call(s)", _ms(t["original_ttft_ms"]), _ms(t["replayed_ttft_ms"]),
                          _ms(t["original_e2e_ms"]), _ms(t["replayed_e2e_ms"]), _n(t["original_output_tokens"]),
                          _n(t["output_tokens"]), _n(t["prompt_tokens"]), "", key="total")

    def set_latency(self, report: Any) -> None:
        self.query_one("#replay-latency", LatencyView).set_report(report)
