"""Where the p95 goes: a latency report (sessions.latency.LatencyReport, or anything with its
fields) as stage bars, budget checks and tail factors. Hidden when there is no report."""
from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

BAR = 24


def _ms(v: Any) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def latency_text(report: Any) -> Text:
    """The report's fields read by name only (kind, ref, title, n, e2el, stages, budgets, tail,
    verdict()), so a report of a run and one of a trace render alike."""
    t = Text()
    t.append(f"where the p95 goes · {getattr(report, 'title', '') or report.ref}", style="bold")
    t.append(f" · {report.kind} {report.ref} · {report.n} request(s)\n", style="dim")
    e = report.e2el
    if e is not None:
        t.append(f"e2el p50 {_ms(e.p50_ms)} · p95 {_ms(e.p95_ms)} · p99 {_ms(e.p99_ms)} ms\n")
    for s in report.stages or []:
        share = max(0.0, min(1.0, s.share_of_p95 or 0.0))
        n = int(share * BAR + 0.5)
        t.append(f"  {s.name:<14} ")
        t.append("█" * n, style="magenta")
        t.append("░" * (BAR - n), style="bright_black")
        t.append(f" {share * 100:5.1f}%  p95 {_ms(s.p95_ms)} ms\n")
    for b in report.budgets or []:
        t.append("  PASS " if b.ok else "  FAIL ", style="green" if b.ok else "bold red")
        where = f" (most in {b.stage})" if not b.ok and getattr(b, "stage", None) else ""
        t.append(f"{b.metric} {_ms(b.value_ms)} ms, limit {_ms(b.limit_ms)} ms{where}\n")
    for f in report.tail or []:
        mark = "⚠ " if f.significant else "  "
        p = "" if f.p_value is None else f" p={f.p_value:.3f}"
        t.append(f"  {mark}{f.feature}: tail {f.tail_value:.4g} vs rest {f.rest_value:.4g}{p}",
                 style="yellow" if f.significant else "dim")
        if getattr(f, "note", None):
            t.append(f" · {f.note}", style="dim")
        t.append("\n")
    try:
        verdict = report.verdict()
    except Exception as err:  # a report that cannot judge itself still shows its figures
        verdict = f"no verdict ({type(err).__name__})"
    t.append(verdict, style="bold")
    return t


class LatencyView(Static):
    """`set_report(report)` shows it; `set_report(None)` hides the section."""

    DEFAULT_CSS = """
    LatencyView { height: auto; margin: 1 0 0 0; }
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__("", **kw)
        self.report: Any = None
        self.display = False

    def set_report(self, report: Any) -> None:
        self.report = report
        self.display = report is not None
        self.update(latency_text(report) if report is not None else "")
