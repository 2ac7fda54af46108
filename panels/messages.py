"""Messages shared between panels and the app."""
from __future__ import annotations

from typing import Any

from textual.message import Message


class PromptSubmitted(Message):
    """The user sent a chat message."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__()


class SessionSelected(Message):
    """The user picked a stored session to reopen."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__()


class SessionLoaded(Message):
    """A stored session (as returned by sessions.get_session) is ready to show."""

    def __init__(self, session: dict[str, Any]) -> None:
        self.session = session
        super().__init__()


class SessionsListed(Message):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        super().__init__()


class EngineReady(Message):
    def __init__(self, model: str, backend: str, context_window: int) -> None:
        self.model = model
        self.backend = backend
        self.context_window = context_window
        super().__init__()


class CachedReply(Message):
    """The semantic cache answered the user's turn; the engine was not asked."""

    def __init__(self, text: str, similarity: float, entry_id: str, cached_prompt: str) -> None:
        self.text = text
        self.similarity = similarity
        self.entry_id = entry_id
        self.cached_prompt = cached_prompt
        super().__init__()


class TracesListed(Message):
    """Imported traces (rows of sessions.traces.store.list_traces)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        super().__init__()


class TraceSelected(Message):
    """The user picked an imported trace to open in the inspector."""

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        super().__init__()


class TraceLoaded(Message):
    """One trace (sessions.traces.store.get_trace) with its N+1 / redundant / loop findings."""

    def __init__(self, trace: dict[str, Any], findings: list[dict[str, Any]]) -> None:
        self.trace = trace
        self.findings = findings
        super().__init__()


class BudgetComputed(Message):
    """The budget panel's rows (the dicts `workbench budget --json` prints) for a session, or for
    any stored session or trace the user asked for (`source` then names it: "trace abc123")."""

    def __init__(self, rows: list[dict[str, Any]], session_id: str | None, source: str | None = None) -> None:
        self.rows = rows
        self.session_id = session_id
        self.source = source
        super().__init__()


class BudgetRequested(Message):
    """The user typed a session or trace id in the Budget tab."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__()


class SweepLoaded(Message):
    """The latest speculation sweep grid (sessions.spec_sweep.load_sweep rows)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        super().__init__()


# ---- replaying a trace (the Traces tab) ----

class ReplayProgress(Message):
    """One LLM call of a trace replayed (a sessions.traces.replay.ReplayStep as a dict)."""

    def __init__(self, trace_id: str, step: dict[str, Any], done: int, total: int) -> None:
        self.trace_id = trace_id
        self.step = step
        self.done = done
        self.total = total
        super().__init__()


class ReplayFinished(Message):
    """A replay ended: `result` is ReplayResult.to_dict(), or None with `error` saying why."""

    def __init__(self, trace_id: str, result: dict[str, Any] | None, error: str | None = None) -> None:
        self.trace_id = trace_id
        self.result = result
        self.error = error
        super().__init__()


class LatencyLoaded(Message):
    """A "where the p95 goes" report (sessions.latency.LatencyReport) for a run or a trace;
    None when that analysis is not installed or has nothing to say."""

    def __init__(self, ref: str, report: Any) -> None:
        self.ref = ref
        self.report = report
        super().__init__()


# ---- bench runs (the Runs tab) ----

class RunsListed(Message):
    """Bench runs (rows of sessions.bench.list_runs), each with `slo_passed` when SLOs are set."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        super().__init__()


class RunSelected(Message):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__()


class RunDetailLoaded(Message):
    """One run's report (sessions.report.report_from) and what its charts draw: TTFT and ITL
    values in ms, and (arrival, first token, finish) offsets in ms per request."""

    def __init__(self, run_id: str, report: dict[str, Any], ttft_ms: list[float], itl_ms: list[float],
                 timeline: list[tuple[float, float | None, float]]) -> None:
        self.run_id = run_id
        self.report = report
        self.ttft_ms = ttft_ms
        self.itl_ms = itl_ms
        self.timeline = timeline
        super().__init__()


class BenchRequested(Message):
    """The Runs tab's form, checked: keyword arguments of workbench.commands.bench_cmd.bench_config,
    plus `backend` ("local" or "openai")."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()


class BenchProgress(Message):
    """A bench run so far: requests finished, sent and asked for, and live TTFT/TPOT percentiles."""

    def __init__(self, finished: int, submitted: int, total: int, live: dict[str, Any]) -> None:
        self.finished = finished
        self.submitted = submitted
        self.total = total
        self.live = live
        super().__init__()


class BenchFinished(Message):
    def __init__(self, run_id: str | None, status: str, error: str | None = None) -> None:
        self.run_id = run_id
        self.status = status
        self.error = error
        super().__init__()


class RunsCompared(Message):
    """report["compare"] of sessions.report.build_report(base, compare_to=other)."""

    def __init__(self, base_id: str, other_id: str, compare: dict[str, Any]) -> None:
        self.base_id = base_id
        self.other_id = other_id
        self.compare = compare
        super().__init__()


class ReportExported(Message):
    """A run's report was written to `path`, or could not be (`error`)."""

    def __init__(self, run_id: str, path: str, fmt: str, size: int = 0, error: str | None = None) -> None:
        self.run_id = run_id
        self.path = path
        self.fmt = fmt
        self.size = size
        self.error = error
        super().__init__()
