"""Where the p95 goes: the end-to-end time of a bench run's or a session's requests split into queue
wait, prefill and decode (an imported trace's agent steps into LLM, tool and gap time), the `[slo]`
budgets each percentile meets or blows and which stage blows it, and what the tail has in common."""
from __future__ import annotations

import bisect
import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.types import percentile
from sessions.errors import SessionsError
from sessions.store import Store
from sessions.tail import ALPHA, MIN_TAIL, TailFactor, attribute_tail, describe

REQUEST_STAGES = ("queue", "prefill", "decode")  # they add up to e2el: arrival → scheduled → first token → finished
TRACE_STAGES = ("llm", "tool", "gap")  # they add up to a step: the time from one LLM call's start to the next's
TAIL_PERCENTILE = 95
# what each budget-able figure is made of, to name the stage that blows it
COMPONENTS = {
    "e2el": REQUEST_STAGES, "ttft": ("queue", "prefill"), "tpot": ("decode",),
    "queue": ("queue",), "prefill": ("prefill",), "decode": ("decode",),
}
TRACE_COMPONENTS = {"e2el": TRACE_STAGES, "llm": ("llm",), "tool": ("tool",), "gap": ("gap",)}
_ALIASES = {"queue_time": "queue", "prefill_time": "prefill", "e2e": "e2el", "step": "e2el", "decode_time": "decode"}
REQUEST_FEATURES = ("prompt_tokens", "output_tokens", "cached_prompt_tokens", "preemptions", "batch_at_arrival",
                    "speculation")
TRACE_FEATURES = ("prompt_tokens", "output_tokens", "tool_ms", "tool_calls")
BINARY_FEATURES = {"speculation"}
COMPLETED = ("stop", "length")


class LatencyError(SessionsError):
    """A latency question the data cannot answer; shown as one line."""


class UnknownIdError(LatencyError, LookupError):
    """No (or more than one) run, session or trace has this id."""


class BadBudgetError(LatencyError, ValueError):
    """An `[slo]` key or limit that does not make sense."""


class NoDataError(LatencyError, ValueError):
    """A session without completed requests, a trace without span times."""


@dataclass(slots=True)
class StageStat:
    """Percentiles of one stage over every request (or step). `share_of_p95` is the stage's part of
    the e2e time of the tail (the requests at or above the p95 e2el), so the shares of the stages add up to 1."""

    name: str
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    share_of_p95: float
    total_ms: float = 0.0
    n: int = 0
    note: str = ""


@dataclass(slots=True)
class BudgetCheck:
    """One `[slo]` limit, e.g. ttft_p95_ms = 500. `stage` is the stage that holds most of the figure
    in the requests at or above it (for a mean: in all of them), blown or not."""

    metric: str
    limit_ms: float
    value_ms: float
    ok: bool
    stage: str
    note: str = ""


@dataclass(slots=True)
class LatencyRow:
    """One request (or trace step): its e2e time, its stages and its features."""

    id: str
    e2el_ms: float
    stages: dict[str, float]
    features: dict[str, float | None]
    in_tail: bool = False
    ttft_ms: float | None = None
    tpot_ms: float | None = None


@dataclass(slots=True)
class LatencyReport:
    kind: str  # "run" | "session" | "trace"
    ref: str  # the full id
    title: str
    n: int  # requests (or steps) measured
    e2el: StageStat
    stages: list[StageStat]
    budgets: list[BudgetCheck]
    tail: list[TailFactor]
    tail_ids: list[str]
    unit: str = "request"  # "request" | "step"
    derived: list[StageStat] = field(default_factory=list)  # ttft = queue + prefill (runs and sessions)
    duration_ms: float | None = None  # a trace: first span start to last span end
    rows: list[LatencyRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def totals_ms(self) -> dict[str, float]:
        return {s.name: s.total_ms for s in self.stages}

    def stage(self, name: str) -> StageStat | None:
        return next((s for s in [*self.stages, *self.derived, self.e2el] if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "ref": self.ref, "title": self.title, "n": self.n, "unit": self.unit,
            "duration_ms": self.duration_ms, "verdict": self.verdict(),
            "e2el": asdict(self.e2el), "stages": [asdict(s) for s in self.stages],
            "derived": [asdict(s) for s in self.derived], "totals_ms": self.totals_ms,
            "budgets": [asdict(b) for b in self.budgets], "tail": [f.to_dict() for f in self.tail],
            "tail_ids": list(self.tail_ids), "notes": list(self.notes),
            "rows": [asdict(r) for r in self.rows],
        }

    def verdict(self) -> str:
        """One sentence: where the p95 goes, which budget it blows, what the tail shares."""
        label = "step" if self.unit == "step" else "e2el"
        parts = [f"p95 {label} {self.e2el.p95_ms:.0f} ms"]
        top = max(self.stages, key=lambda s: s.share_of_p95, default=None)
        if top is not None and top.share_of_p95 > 0:
            parts[0] += f": {top.name} {top.share_of_p95:.0%} of it"
        blown = [b for b in self.budgets if not b.ok]
        if blown:
            parts.append("; ".join(f"{b.metric} budget {b.limit_ms:g} blown by {b.stage}" for b in blown))
        elif self.budgets:
            parts.append(f"within {'its' if len(self.budgets) == 1 else 'all'} {len(self.budgets)} budget"
                         + ("" if len(self.budgets) == 1 else "s"))
        sig = sorted((f for f in self.tail if f.significant), key=lambda f: f.p_value)
        if sig:
            parts.append(describe(sig[0], self.unit))
        elif len(self.tail_ids) < MIN_TAIL:
            parts.append(f"too few tail {self.unit}s ({len(self.tail_ids)}) to say what they share")
        else:
            parts.append(f"nothing sets the tail {self.unit}s apart")
        return "; ".join(parts)


# ---- budgets ----

def parse_budget_key(key: str) -> tuple[str, str]:
    """`ttft_p95_ms` (or vLLM's order, `p95_ttft_ms`; `e2el_mean_ms`) -> ("ttft", "p95")."""
    if not key.endswith("_ms"):
        raise BadBudgetError(f"budget {key!r}: name it <figure>_<p95|mean>_ms, e.g. ttft_p95_ms")
    parts = key[:-3].split("_")

    def is_stat(s: str) -> bool:
        return s == "mean" or (s.startswith("p") and _quantile(s) is not None)

    if len(parts) >= 2 and is_stat(parts[-1]):
        metric, stat = "_".join(parts[:-1]), parts[-1]
    elif len(parts) >= 2 and is_stat(parts[0]):
        metric, stat = "_".join(parts[1:]), parts[0]
    else:
        raise BadBudgetError(f"budget {key!r}: name it <figure>_<p95|mean>_ms, e.g. ttft_p95_ms")
    metric = _ALIASES.get(metric, metric)
    if metric not in COMPONENTS and metric not in TRACE_COMPONENTS:
        known = ", ".join(dict.fromkeys([*COMPONENTS, *TRACE_COMPONENTS]))
        raise BadBudgetError(f"budget {key!r}: unknown figure {metric!r}; known: {known}")
    return metric, stat


def _quantile(stat: str) -> float | None:
    try:
        q = float(stat[1:])
    except ValueError:
        return None
    return q if 0 < q < 100 else None


def check_budgets(slo: dict[str, Any] | None) -> dict[str, float]:
    """The budgets of an `[slo]` table, checked: known names, positive limits in milliseconds.
    Per-request SLO keys of `workbench report --slo` (ttft_ms, ...) are goodput limits, not budgets: left out."""
    out: dict[str, float] = {}
    for key, limit in (slo or {}).items():
        if key in ("ttft_ms", "tpot_ms", "e2el_ms"):
            continue
        parse_budget_key(key)
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) or limit <= 0:
            raise BadBudgetError(f"budget {key} = {limit!r}: the limit must be a positive number of milliseconds")
        out[key] = float(limit)
    return out


def _stat(values: list[float], stat: str) -> float | None:
    if not values:
        return None
    return statistics.fmean(values) if stat == "mean" else percentile(values, _quantile(stat))


def _metric_values(rows: list[LatencyRow], metric: str) -> list[tuple[LatencyRow, float]]:
    if metric == "e2el":
        return [(r, r.e2el_ms) for r in rows]
    if metric in ("ttft", "tpot"):
        return [(r, v) for r in rows if (v := getattr(r, f"{metric}_ms")) is not None]
    return [(r, r.stages[metric]) for r in rows if metric in r.stages]


def evaluate_budgets(rows: list[LatencyRow], budgets: dict[str, float], kind: str,
                     notes: list[str]) -> list[BudgetCheck]:
    components = TRACE_COMPONENTS if kind == "trace" else COMPONENTS
    out = []
    for key, limit in budgets.items():
        metric, stat = parse_budget_key(key)
        if metric not in components:
            notes.append(f"budget {key} does not apply to a {kind}")
            continue
        pairs = _metric_values(rows, metric)
        value = _stat([v for _, v in pairs], stat)
        if value is None:
            notes.append(f"budget {key}: no {metric} figures recorded")
            continue
        # the requests that make the figure: at or above it for a percentile, all of them for a mean
        at = [r for r, v in pairs if stat == "mean" or v >= value] or [r for r, _ in pairs]
        parts = [c for c in components[metric] if any(c in r.stages for r in at)]
        stage = max(parts, key=lambda c: sum(r.stages.get(c, 0.0) for r in at)) if parts else metric
        out.append(BudgetCheck(key, limit, value, value <= limit, stage))
    return out


# ---- the shared arithmetic ----

def _stage_stat(name: str, values: list[float], tail_rows: list[LatencyRow], tail_total: float,
                note: str = "") -> StageStat:
    part = sum(r.e2el_ms if name == "e2el" else r.stages.get(name, 0.0) for r in tail_rows)
    return StageStat(name, percentile(values, 50) or 0.0, percentile(values, 95) or 0.0, percentile(values, 99) or 0.0,
                     statistics.fmean(values) if values else 0.0, part / tail_total if tail_total > 0 else 0.0,
                     sum(values), len(values), note)


def _assemble(kind: str, ref: str, title: str, rows: list[LatencyRow], stage_names: tuple[str, ...],
              features: tuple[str, ...], slo: dict[str, Any] | None, *, unit: str, notes: list[str],
              stage_notes: dict[str, str] | None = None, duration_ms: float | None = None) -> LatencyReport:
    budgets = check_budgets(slo)
    e2e = [r.e2el_ms for r in rows]
    p95 = percentile(e2e, TAIL_PERCENTILE)
    for r in rows:
        r.in_tail = r.e2el_ms >= p95
    tail_rows = [r for r in rows if r.in_tail]
    tail_total = sum(r.e2el_ms for r in tail_rows)
    present = [s for s in stage_names if any(s in r.stages for r in rows)]
    stages = [_stage_stat(s, [r.stages[s] for r in rows if s in r.stages], tail_rows, tail_total,
                          (stage_notes or {}).get(s, "")) for s in present]
    derived = []
    if kind != "trace":
        ttfts = [r.ttft_ms for r in rows if r.ttft_ms is not None]
        if ttfts:
            st = _stage_stat("ttft", ttfts, tail_rows, tail_total)
            st.share_of_p95 = sum(s.share_of_p95 for s in stages if s.name in ("queue", "prefill"))
            derived.append(st)
    tail = attribute_tail([r.in_tail for r in rows], {f: [r.features.get(f) for r in rows] for f in features},
                          BINARY_FEATURES, ALPHA, MIN_TAIL, unit)
    return LatencyReport(kind, ref, title, len(rows), _stage_stat("e2el", e2e, tail_rows, tail_total), stages,
                         evaluate_budgets(rows, budgets, kind, notes), tail, [r.id for r in tail_rows], unit=unit,
                         derived=derived, duration_ms=duration_ms, rows=rows, notes=notes)


# ---- runs and sessions ----

def _resolve(store: Store, table: str, ref: str, what: str) -> str:
    ids = [r[0] for r in store.execute(f"SELECT id FROM {table} WHERE starts_with(id, ?)", [ref]).fetchall()]
    if not ids:
        raise UnknownIdError(f"no {what} with id {ref!r}")
    if len(ids) > 1:
        raise UnknownIdError(f"{what} id {ref!r} is ambiguous ({len(ids)} match); give more characters")
    return ids[0]


def batch_at_arrival(arrivals: list[int], finishes: list[int | None]) -> list[int]:
    """For each request, how many of the others were in flight (arrived, not finished) when it
    arrived. Requests never finished are left out of the others."""
    starts = sorted(a for a, f in zip(arrivals, finishes) if f is not None)
    ends = sorted(f for f in finishes if f is not None)
    out = []
    for a, f in zip(arrivals, finishes):
        n = bisect.bisect_right(starts, a) - bisect.bisect_right(ends, a)
        out.append(max(0, n - (1 if f is not None and f > a else 0)))
    return out


_REQUEST_SQL = """
    SELECT id, backend, arrival_ns, scheduled_ns, first_token_ns, finished_ns, prompt_tokens, output_tokens,
           cached_prompt_tokens, spec_draft_tokens, preemptions, finish_reason
    FROM requests WHERE session_id = ? ORDER BY arrival_ns, id"""


def _request_rows(store: Store, sid: str, notes: list[str]) -> tuple[list[LatencyRow], dict[str, str]]:
    recs = store.execute(_REQUEST_SQL, [sid]).fetchall()
    in_flight = batch_at_arrival([r[2] for r in recs], [r[5] for r in recs])
    rows, stage_notes = [], {}
    missing_queue = 0
    for rec, busy in zip(recs, in_flight):
        (rid, backend, arrival, scheduled, first, finished, prompt, output, cached, drafted, preempt, reason) = rec
        if reason not in COMPLETED or first is None or finished is None:
            continue
        stages: dict[str, float] = {}
        if scheduled is not None:
            stages["queue"] = (scheduled - arrival) / 1e6
            stages["prefill"] = (first - scheduled) / 1e6
        else:
            missing_queue += 1
            stages["prefill"] = (first - arrival) / 1e6
        stages["decode"] = (finished - first) / 1e6
        remote = backend == "openai"  # a remote server does not say whether it preempted
        tpot = (finished - first) / 1e6 / (output - 1) if output and output > 1 else None
        rows.append(LatencyRow(rid, (finished - arrival) / 1e6, stages, {
            "prompt_tokens": prompt, "output_tokens": output, "cached_prompt_tokens": cached,
            "preemptions": None if remote else preempt,
            "batch_at_arrival": float(busy),
            "speculation": None if drafted is None else float(drafted > 0),
        }, ttft_ms=(first - arrival) / 1e6, tpot_ms=tpot))
    if missing_queue:
        text = ("queue wait not recorded (a remote backend sees only the first token): prefill holds the whole TTFT"
                if missing_queue == len(rows) else
                f"queue wait not recorded for {missing_queue} request(s): their prefill holds the whole TTFT")
        stage_notes["prefill"] = text
        notes.append(text)
    if any(r.features["preemptions"] is None for r in rows) and any(r.features["preemptions"] is not None for r in rows):
        notes.append("preemptions are not known for some requests (a remote backend, or recorded before they were kept)")
    return rows, stage_notes


def _for_session(store: Store, sid: str, kind: str, slo: dict[str, Any] | None) -> LatencyReport:
    s = store.execute("SELECT kind, title FROM sessions WHERE id = ?", [sid]).fetchone()
    notes: list[str] = []
    rows, stage_notes = _request_rows(store, sid, notes)
    if not rows:
        raise NoDataError(f"{'bench run' if kind == 'run' else 'session'} {sid} has no completed requests to measure")
    title = (s[1] if s else None) or f"{kind} {sid}"
    return _assemble(kind, sid, title, rows, REQUEST_STAGES, REQUEST_FEATURES, slo, unit="request", notes=notes,
                     stage_notes=stage_notes)


def latency_for_run(store: Store, run_id: str, slo: dict[str, Any] | None = None) -> LatencyReport:
    """A bench run (`workbench bench`), by id or unique prefix."""
    return _for_session(store, _resolve(store, "bench_runs", run_id, "bench run"), "run", slo)


def latency_for_session(store: Store, session_id: str, slo: dict[str, Any] | None = None) -> LatencyReport:
    """Any recorded session (chat, serve, replay, or a bench run seen as its session)."""
    sid = _resolve(store, "sessions", session_id, "session")
    return _for_session(store, sid, "session", slo)


# ---- traces ----

def _depths(spans: list[dict[str, Any]]) -> dict[str, int]:
    parent = {s["span_id"]: s["parent_id"] for s in spans}
    out: dict[str, int] = {}
    for sid in parent:
        chain, cur = [], sid
        while cur in parent and cur not in out and cur not in chain:
            chain.append(cur)
            cur = parent[cur]
        base = out.get(cur, -1) if cur in parent else -1
        for k, c in enumerate(reversed(chain)):
            out[c] = base + 1 + k
    return out


def _has_llm_ancestor(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> bool:
    seen, cur = set(), span["parent_id"]
    while cur in by_id and cur not in seen:
        seen.add(cur)
        if by_id[cur]["kind"] == "llm":
            return True
        cur = by_id[cur]["parent_id"]
    return False


def trace_steps(spans: list[dict[str, Any]]) -> tuple[list[LatencyRow], int, int]:
    """Split a timed trace into steps, one per LLM call that no other LLM call encloses: a step runs
    from its call's start to the next call's start (the first from the trace's start, the last to
    its end), so the steps tile the trace. Each instant of a step is LLM, tool (tool and retrieval
    spans) or gap (neither: the agent's own work, waits, unrecorded calls), by the deepest span
    over it (the later-started of equals: a tool run inside an LLM turn span is tool time)."""
    starts = [s["start_ns"] for s in spans if s["start_ns"] is not None]
    ends = [s["end_ns"] for s in spans if s["end_ns"] is not None]
    if not starts or not ends or max(ends) <= min(starts):
        raise NoDataError("no span start and end times")
    t0, t1 = min(starts), max(ends)
    timed = [s for s in spans if s["start_ns"] is not None and s["end_ns"] is not None and s["end_ns"] >= s["start_ns"]]
    by_id = {s["span_id"]: s for s in spans}
    depth = _depths(spans)
    calls = sorted((s for s in timed if s["kind"] == "llm" and not _has_llm_ancestor(s, by_id)),
                   key=lambda s: (s["start_ns"], s["seq"]))
    bounds: list[int] = []  # the start of each step
    owners: list[list[dict[str, Any]]] = []  # the LLM calls that open it
    for c in calls:
        if bounds and c["start_ns"] == bounds[-1]:
            owners[-1].append(c)
        else:
            bounds.append(c["start_ns"])
            owners.append([c])
    if not bounds:
        bounds, owners = [t0], [[]]
    bounds[0] = t0
    seg_end = bounds[1:] + [t1]
    stages = [{"llm": 0, "tool": 0, "gap": 0} for _ in bounds]
    leaves = [s for s in timed if s["kind"] in ("llm", "tool", "retrieval") and s["end_ns"] > s["start_ns"]]
    _classify(leaves, depth, bounds, seg_end, stages)
    tool_calls = [0] * len(bounds)
    for s in spans:
        if s["kind"] in ("tool", "retrieval") and s["start_ns"] is not None:
            tool_calls[max(0, bisect.bisect_right(bounds, s["start_ns"]) - 1)] += 1
    rows = []
    for k, (b, e) in enumerate(zip(bounds, seg_end)):
        own = owners[k]
        ins = [c["input_tokens"] for c in own if c["input_tokens"] is not None]
        outs = [c["output_tokens"] for c in own if c["output_tokens"] is not None]
        st = {name: v / 1e6 for name, v in stages[k].items()}
        rows.append(LatencyRow(own[0]["span_id"] if own else "trace-start", (e - b) / 1e6, st, {
            "prompt_tokens": float(sum(ins)) if ins else None, "output_tokens": float(sum(outs)) if outs else None,
            "tool_ms": st["tool"], "tool_calls": float(tool_calls[k]),
        }))
    return rows, t0, t1


def _classify(leaves: list[dict[str, Any]], depth: dict[str, int], bounds: list[int], seg_end: list[int],
              stages: list[dict[str, int]]) -> None:
    """Sweep over every span edge and step edge; each piece of time goes to one stage of one step."""
    points = sorted({*bounds, *seg_end, *(s["start_ns"] for s in leaves), *(s["end_ns"] for s in leaves)})
    by_start = sorted(leaves, key=lambda s: s["start_ns"])
    active: list[dict[str, Any]] = []
    i = 0
    seg = 0
    for x, y in zip(points, points[1:]):
        while i < len(by_start) and by_start[i]["start_ns"] <= x:
            active.append(by_start[i])
            i += 1
        active = [s for s in active if s["end_ns"] > x]
        while seg + 1 < len(bounds) and bounds[seg + 1] <= x:
            seg += 1
        if x < bounds[0] or x >= seg_end[-1]:
            continue
        if active:
            top = max(active, key=lambda s: (depth.get(s["span_id"], 0), s["start_ns"], s["seq"]))
            stage = "llm" if top["kind"] == "llm" else "tool"
        else:
            stage = "gap"
        stages[seg][stage] += y - x


def latency_for_trace(store: Store, trace_id: str, slo: dict[str, Any] | None = None) -> LatencyReport:
    """An imported trace with span times: its agent steps split into LLM, tool and gap time."""
    from sessions.traces.store import get_trace

    tid = _resolve(store, "traces", trace_id, "trace")
    t = get_trace(store, tid)
    try:
        rows, t0, t1 = trace_steps(t["spans"])
    except NoDataError:
        raise NoDataError(f"trace {tid} ({t['format']}) has no span start and end times: "
                          "its time cannot be split into LLM, tool and gaps") from None
    notes = []
    llm = [s for s in t["spans"] if s["kind"] == "llm"]
    if all(r.id == "trace-start" for r in rows):
        notes.append(f"none of the trace's {len(llm)} LLM call(s) has times: the whole trace is one step, "
                     "and their time counts as gap" if llm else "the trace has no LLM call: the whole trace is one step")
    elif untimed := sum(1 for s in llm if s["start_ns"] is None or s["end_ns"] is None):
        notes.append(f"{untimed} of {len(llm)} LLM call(s) have no times: their time counts as gap")
    title = t.get("name") or t.get("source") or f"trace {tid}"
    return _assemble("trace", tid, title, rows, TRACE_STAGES, TRACE_FEATURES, slo, unit="step", notes=notes,
                     duration_ms=(t1 - t0) / 1e6)


# ---- any id ----

def latency_report(store: Store, ref: str, slo: dict[str, Any] | None = None) -> LatencyReport:
    """A bench run, a session or a trace, by id or unique prefix (runs are sessions too: a run's id
    gives the run)."""
    ref = (ref or "").strip()
    if not ref:
        raise UnknownIdError("give a bench run, session or trace id")
    check_budgets(slo)  # a bad budget is reported before the data is read
    cur = store.cursor()
    sessions = [r[0] for r in cur.execute("SELECT id FROM sessions WHERE starts_with(id, ?)", [ref]).fetchall()]
    traces = [r[0] for r in cur.execute("SELECT id FROM traces WHERE starts_with(id, ?)", [ref]).fetchall()]
    found = len(sessions) + len(traces)
    if found == 0:
        raise UnknownIdError(f"no bench run, session or trace with id {ref!r}")
    if found > 1:
        raise UnknownIdError(f"id {ref!r} is ambiguous ({len(sessions)} session(s), {len(traces)} trace(s) match); "
                             "give more characters")
    if traces:
        return latency_for_trace(store, traces[0], slo)
    sid = sessions[0]
    is_run = cur.execute("SELECT count(*) FROM bench_runs WHERE id = ?", [sid]).fetchone()[0]
    return _for_session(store, sid, "run" if is_run else "session", slo)


__all__ = ["BadBudgetError", "BudgetCheck", "LatencyError", "LatencyReport", "LatencyRow", "NoDataError", "StageStat",
           "TailFactor", "UnknownIdError", "check_budgets", "latency_for_run", "latency_for_session",
           "latency_for_trace", "latency_report", "parse_budget_key", "trace_steps"]
