"""Sentry-style detectors over a trace's calls: retries (the same failing call made again), N+1 (a run of
calls to one tool that differ only in parameter values), redundant calls (same call, same result), loops."""
from __future__ import annotations

import bisect
import hashlib
import math
import operator
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sessions.traces.fastjson import make_encoder
from sessions.traces.gcpause import gc_paused
from sessions.traces.model import Span, Trace

REQUESTED_BY = "workbench.requested_by"


@dataclass(slots=True)
class NPlusOneSettings:
    min_repeats: int = 3  # calls in the run
    min_total_ms: float = 50.0  # summed tool time of the run; traces without timings skip this test
    # argument keys whose string is a command line, parameterized token by token rather than whole
    command_keys: tuple[str, ...] = ("command", "cmd", "code", "script")


@dataclass(slots=True)
class RedundantSettings:
    min_repeats: int = 2  # identical calls with identical results
    min_total_ms: float = 0.0


@dataclass(slots=True)
class LoopSettings:
    min_repeats: int = 3  # iterations of the repeating sequence
    max_period_calls: int = 6  # longest sequence looked for
    min_period_calls: int = 2  # a period of 1 is a redundant call, not a loop


@dataclass(slots=True)
class RetrySettings:
    min_attempts: int = 2  # the failed call and at least one more of the same
    min_failed: int = 1  # attempts that failed before the last


@dataclass(slots=True)
class DetectorSettings:
    nplus1: NPlusOneSettings = field(default_factory=NPlusOneSettings)
    redundant: RedundantSettings = field(default_factory=RedundantSettings)
    loop: LoopSettings = field(default_factory=LoopSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)


@dataclass(slots=True)
class Finding:
    kind: str  # n_plus_one | redundant | loop
    trace_id: str
    tool: str
    count: int
    total_ms: float | None  # None without timings
    saved_ms_estimate: float | None
    estimate_method: str
    span_ids: list[str]
    fingerprint: str
    signature: str
    dispatch: str  # sequential | fan_out | unknown
    timings: str  # full | durations | none
    detail: str = ""  # what was seen, in a line, for kinds whose count and tool do not say it all

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- parameterizing arguments (ids, numbers, quoted strings -> ?) ----

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"(\s*:)?')  # a key when followed by ":"
_JSON_NUMBER = re.compile(r"(?<![\w\"])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_CMD_TOKENS = re.compile(
    r"'[^']*'|\"[^\"]*\""  # quoted strings
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"  # uuids
    r"|(?<!\S)[\w.~-]*[/.][\w./~-]+(?!\S)"  # paths and file names
    r"|\b0x[0-9a-fA-F]+\b|\b\d+(?:\.\d+)?\b"  # numbers
)
_REPEATED_PARAMS = re.compile(r"\?(?:[\s,]+\?)+")


# one encoder for all calls: json.dumps(**options) builds a new one each time, and even a kept
# JSONEncoder builds its C encoder again on every encode()
_CANONICAL = make_encoder(sort_keys=True, compact=True)


def canonical(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return _CANONICAL(arguments)


def parameterize_command(text: str) -> str:
    return _REPEATED_PARAMS.sub("?", _CMD_TOKENS.sub("?", text.strip()))


def parameterize(arguments: Any, exact: str, command_keys: tuple[str, ...]) -> str:
    """The shape of a call's arguments with every value replaced by `?`: keys stay, values go.
    Command-line strings keep their words and lose their operands (`cat ?`, `grep -n ? ?`)."""
    if isinstance(arguments, str):
        return parameterize_command(arguments)
    if isinstance(arguments, dict) and not arguments.keys().isdisjoint(command_keys):
        parts = []
        for k in sorted(arguments):
            v = arguments[k]
            if k in command_keys and isinstance(v, str):
                parts.append(f"{k}={parameterize_command(v)}")
            else:
                parts.append(f"{k}={parameterize(v, canonical(v), command_keys)}")
        return "{" + ",".join(parts) + "}"
    if type(arguments) is dict:
        # a flat object's signature depends only on its keys and the types of its values (null
        # stays, the rest become ?): the N calls of an N+1 share them and are parameterized once
        types = tuple(map(type, arguments.values()))
        memo_key = (tuple(arguments), types)
        sig = _FLAT_SIGNATURES.get(memo_key)
        if sig is not None:
            return sig
        sig = _flat_shape(arguments)
        if sig is not None:
            sig = _finish(sig)
            if float not in types and len(_FLAT_SIGNATURES) < _FLAT_SIGNATURES_MAX:  # a float may be NaN
                _FLAT_SIGNATURES[memo_key] = sig
            return sig
    return _finish(_JSON_NUMBER.sub("?", _JSON_STRING.sub(_keep_keys, exact)))


_FLAT_SIGNATURES: dict[tuple, str] = {}
_FLAT_SIGNATURES_MAX = 4096  # distinct argument shapes remembered; beyond, computed each time


def _finish(sig: str) -> str:
    sig = sig.replace("true", "?").replace("false", "?")
    # a list of values is one parameter however long it is, as Sentry collapses `IN (?, ?, ?)`
    return _REPEATED_PARAMS.sub("?", sig) if "?," in sig else sig


def _keep_keys(m: re.Match) -> str:
    return m.group(0) if m.group(1) else "?"


def _flat_shape(arguments: dict) -> str | None:
    """What the two regexes make of the canonical JSON of a flat object under plain keys (ASCII
    letters, digits, _), built without running them over the text: `{"order_id":?}` for
    `{"order_id": 17}`. None for anything else (nested values, other keys, NaN, Infinity), which
    the regexes then handle."""
    parts = []
    for k, v in arguments.items():
        if type(k) is not str or not (k.isascii() and k.replace("_", "a").isalnum()):
            return None
        t = type(v)
        if t is str or t is int or (t is float and math.isfinite(v)):
            parts.append((k, "?"))
        elif v is None:
            parts.append((k, "null"))
        elif t is bool:
            parts.append((k, "true" if v else "false"))
        else:
            return None
    parts.sort()
    return "{" + ",".join([f'"{k}":{v}' for k, v in parts]) + "}"


def fingerprint(kind: str, tool: str, signature: str) -> str:
    return hashlib.sha1(f"{kind}\0{tool}\0{signature}".encode()).hexdigest()[:16]


# ---- the tool calls of a trace, prepared once for all detectors ----


@dataclass(slots=True)
class ToolCallView:
    span: Span
    tool: str
    exact: str  # tool + canonical arguments
    signature: str  # tool + parameterized arguments
    result: str | None


def tool_calls(trace: Trace, command_keys: tuple[str, ...]) -> list[ToolCallView]:
    out = []
    for s in sorted((s for s in trace.spans if s.kind == "tool"), key=lambda s: s.seq):
        tool = s.tool_name or s.name
        args = s.tool_call.arguments if s.tool_call else None
        exact = canonical(args)
        out.append(ToolCallView(s, tool, f"{tool}\0{exact}", parameterize(args, exact, command_keys),
                                s.tool_call.result if s.tool_call else None))
    return out


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e6


def _timing(spans: list[Span]) -> tuple[str, float | None, float | None]:
    """(timings, total_ms, slowest_ms): full = start and end known, durations = only how long."""
    durs = [s.duration for s in spans]
    if any(d is None for d in durs):
        return "none", None, None
    full = all(s.start_ns is not None and s.end_ns is not None for s in spans)
    return ("full" if full else "durations"), sum(durs) / 1e6, max(durs) / 1e6


def _dispatch(spans: list[Span], timings: str) -> str:
    if timings == "full":
        ordered = sorted(spans, key=lambda s: s.start_ns)
        overlap = any(b.start_ns < a.end_ns for a, b in zip(ordered, ordered[1:]))
        return "fan_out" if overlap else "sequential"
    askers = [s.attributes.get(REQUESTED_BY) for s in spans]
    if all(a is not None for a in askers):
        return "fan_out" if len(set(askers)) < len(askers) else "sequential"
    return "sequential" if timings == "durations" else "unknown"


# ---- detectors ----


class NPlusOneDetector:
    """Consecutive calls to one tool with the same parameterized arguments but different values;
    LLM turns between them are allowed (that is the agent loop), another tool call is not."""

    kind = "n_plus_one"

    def __init__(self, settings: NPlusOneSettings | None = None):
        self.settings = settings or NPlusOneSettings()

    def detect(self, trace: Trace, calls: list[ToolCallView]) -> list[Finding]:
        findings = []
        index: _LlmIndex | None = None
        keys = [(c.tool, c.signature) for c in calls]
        # a run of n calls is n - 1 neighbours that match
        for start, stop in _equal_runs(keys, 1, self.settings.min_repeats - 1):
            run = calls[start:stop + 1]
            if len({c.exact for c in run}) < 2:
                continue  # all identical: that is a redundant call, reported apart
            index = index or _LlmIndex(trace)
            f = self._finding(trace, run, index)
            if f is not None:
                findings.append(f)
        return findings

    def _finding(self, trace: Trace, run: list[ToolCallView], index: "_LlmIndex") -> Finding | None:
        spans = [c.span for c in run]
        timings, total, slowest = _timing(spans)
        if total is not None and total < self.settings.min_total_ms:
            return None
        dispatch = _dispatch(spans, timings)
        saved, method = _estimate(index, spans, timings, total, slowest, dispatch)
        tool = run[0].tool
        return Finding(self.kind, trace.trace_id, tool, len(run), total, saved, method, [s.span_id for s in spans],
                       fingerprint(self.kind, tool, run[0].signature), run[0].signature, dispatch, timings)


def _estimate(index: "_LlmIndex", spans: list[Span], timings: str, total: float | None, slowest: float | None,
              dispatch: str) -> tuple[float | None, str]:
    if total is None:
        return None, "no timings in this trace: judged on the call count alone, no time estimate"
    if dispatch == "fan_out":
        wall = (max(s.end_ns for s in spans) - min(s.start_ns for s in spans)) / 1e6 if timings == "full" else total
        saved = max(0.0, wall - slowest)
        return saved, (f"calls already overlap; one batched call would take about as long as the slowest "
                       f"({slowest:.1f} ms): wall time {wall:.1f} ms minus slowest")
    saved = total - slowest
    method = (f"parallel dispatch or one batched call takes about as long as the slowest call: "
              f"sum of {len(spans)} call times {total:.1f} ms minus slowest {slowest:.1f} ms")
    rounds = _llm_round_trips_ms(index, spans)
    if rounds is not None and rounds[0]:
        saved += rounds[1]
        method += f"; plus {rounds[0]} LLM turn(s) that only asked for the next call ({rounds[1]:.1f} ms)"
    if timings == "durations":
        method += " (the format records durations only; calls assumed one per step)"
    return saved, method


class _LlmIndex:
    """The trace's LLM spans by id and by start time, built once per trace (not per finding)."""

    def __init__(self, trace: Trace):
        llm = [s for s in trace.spans if s.kind == "llm"]
        self.by_id = {s.span_id: s for s in llm}
        timed = sorted((s for s in llm if s.start_ns is not None and s.end_ns is not None), key=lambda s: s.start_ns)
        self.timed = timed
        self.starts = [s.start_ns for s in timed]


def _llm_round_trips_ms(index: _LlmIndex, spans: list[Span]) -> tuple[int, float] | None:
    """LLM spans that asked for the 2nd..Nth call: a batched call would not need them."""
    askers = [s.attributes.get(REQUESTED_BY) for s in spans]
    if any(a is None for a in askers):
        return _llm_between_ms(index, spans)
    extra = list(dict.fromkeys(askers))[1:]
    if not extra:
        return 0, 0.0
    by_id = index.by_id
    durs = [by_id[a].duration for a in extra if a in by_id]
    if len(durs) != len(extra) or any(d is None for d in durs):
        return None
    return len(extra), sum(durs) / 1e6


def _llm_between_ms(index: _LlmIndex, spans: list[Span]) -> tuple[int, float] | None:
    """Formats without the asking span (OTLP, Langfuse, LangSmith): the LLM calls that ran
    between the run's calls, beside them in the tree, are the agent asking for the next one."""
    if any(s.start_ns is None or s.end_ns is None for s in spans):
        return None
    lo = min(s.end_ns for s in spans)
    hi = max(s.start_ns for s in spans)
    parents = {s.parent_id for s in spans}
    between = [s for s in index.timed[bisect.bisect_left(index.starts, lo):bisect.bisect_right(index.starts, hi)]
               if s.parent_id in parents and s.end_ns <= hi]
    return len(between), sum(s.end_ns - s.start_ns for s in between) / 1e6


class RedundantCallDetector:
    """The same call (tool and canonical arguments) made again with the same result. A repeat whose
    result differs (tests re-run after an edit) observed new state and is not redundant."""

    kind = "redundant"

    def __init__(self, settings: RedundantSettings | None = None):
        self.settings = settings or RedundantSettings()

    def detect(self, trace: Trace, calls: list[ToolCallView]) -> list[Finding]:
        groups: dict[tuple[str, str | None], list[ToolCallView]] = {}
        for c in calls:
            groups.setdefault((c.exact, c.result), []).append(c)
        findings = []
        for group in groups.values():
            if len(group) < self.settings.min_repeats:
                continue
            spans = [c.span for c in group]
            timings, total, _ = _timing(spans)
            if total is not None and total < self.settings.min_total_ms:
                continue
            first = _ms(spans[0].duration)
            saved = None if total is None or first is None else total - first
            method = ("no timings in this trace: judged on the call count alone, no time estimate" if saved is None else
                      f"reuse the first call's result: the {len(spans) - 1} repeat(s) cost {saved:.1f} ms")
            tool = group[0].tool
            findings.append(Finding(self.kind, trace.trace_id, tool, len(group), total, saved, method,
                                    [s.span_id for s in spans], fingerprint(self.kind, tool, group[0].signature),
                                    group[0].signature, _dispatch(spans, timings), timings))
        return findings


class LoopDetector:
    """A sequence of 2..max_period_calls calls (exact arguments) that repeats back to back at least
    min_repeats times: the agent is going round in circles."""

    kind = "loop"

    def __init__(self, settings: LoopSettings | None = None):
        self.settings = settings or LoopSettings()

    def detect(self, trace: Trace, calls: list[ToolCallView]) -> list[Finding]:
        ids: dict[str, int] = {}
        seq = [ids.setdefault(c.exact, len(ids)) for c in calls]
        covered = [False] * len(seq)
        findings = []
        for p in range(self.settings.min_period_calls, self.settings.max_period_calls + 1):
            # calls j..k-1 each equal to the call p later: (k - j) + p calls repeating with period p
            for start, k in _equal_runs(seq, p, (self.settings.min_repeats - 1) * p):
                repeats = ((k - start) + p) // p
                block = seq[start:start + p]
                if len(set(block)) < 2 or _has_shorter_period(block):
                    continue
                if any(covered[start:start + repeats * p]):
                    continue
                for n in range(start, start + repeats * p):
                    covered[n] = True
                findings.append(self._finding(trace, calls[start:start + repeats * p], p, repeats))
        return findings

    def _finding(self, trace: Trace, calls: list[ToolCallView], period: int, repeats: int) -> Finding:
        spans = [c.span for c in calls]
        timings, total, _ = _timing(spans)
        saved = None if total is None else total * (repeats - 1) / repeats
        method = ("no timings in this trace: judged on the repeat count alone, no time estimate" if saved is None else
                  f"stop after the first of {repeats} identical iterations: {repeats - 1}/{repeats} of {total:.1f} ms")
        tool = " → ".join(c.tool for c in calls[:period])
        signature = " → ".join(c.signature for c in calls[:period])
        return Finding(self.kind, trace.trace_id, tool, repeats, total, saved, method, [s.span_id for s in spans],
                       fingerprint(self.kind, tool, signature), signature, _dispatch(spans, timings), timings)


class RetryDetector:
    """The same call (tool and exact arguments, or an LLM request with the same input) made again
    right after it failed: a retry, reported as one, and counted as one call by the detectors
    that follow, so that three attempts at one failing lookup are not an N+1."""

    kind = "retry"

    def __init__(self, settings: RetrySettings | None = None):
        self.settings = settings or RetrySettings()

    def runs(self, keys: list[str], failed: list[bool]) -> list[tuple[int, int]]:
        """[start, stop) of every run of equal keys in which each attempt but the last failed."""
        out, i, n = [], 0, len(keys)
        while i < n:
            j = i
            while j + 1 < n and keys[j + 1] == keys[i] and failed[j]:
                j += 1
            attempts, fails = j - i + 1, sum(failed[i:j])  # failed[j] was not retried
            if attempts >= self.settings.min_attempts and fails >= self.settings.min_failed:
                out.append((i, j + 1))
            i = j + 1
        return out

    def detect(self, trace: Trace, calls: list[ToolCallView]) -> tuple[list[Finding], list[ToolCallView]]:
        """Findings, and the calls with every retried attempt but the last left out."""
        keys = [c.exact for c in calls]
        failed = [c.span.status == "error" for c in calls]
        findings, drop = [], set()
        for start, stop in self.runs(keys, failed):
            run = calls[start:stop]
            drop.update(range(start, stop - 1))
            findings.append(self._finding(trace, [c.span for c in run], run[0].tool, run[0].signature))
        findings += self._llm_retries(trace)
        kept = [c for n, c in enumerate(calls) if n not in drop] if drop else calls
        return findings, kept

    def _llm_retries(self, trace: Trace) -> list[Finding]:
        llm = sorted((s for s in trace.spans if s.kind == "llm"), key=lambda s: s.seq)
        if len(llm) < self.settings.min_attempts or not any(s.status == "error" for s in llm):
            return []
        keys = [f"{s.attributes.get('gen_ai.request.model')}\0{_CANONICAL([m.to_dict() for m in trace.input_for(s)])}"
                for s in llm]
        out = []
        for start, stop in self.runs(keys, [s.status == "error" for s in llm]):
            run = llm[start:stop]
            model = str(run[0].attributes.get("gen_ai.request.model") or "model")
            out.append(self._finding(trace, run, f"llm {model}", "llm request"))
        return out

    def _finding(self, trace: Trace, spans: list[Span], tool: str, signature: str) -> Finding:
        timings, total, _ = _timing(spans)
        failed = [s for s in spans[:-1] if s.status == "error"]
        errors = sorted({str(s.attributes.get("error.type") or s.attributes.get("error.message") or "error")[:60] for s in failed})
        outcome = "the last failed too" if spans[-1].status == "error" else "the last succeeded"
        wasted = None if total is None else sum(s.duration for s in failed) / 1e6
        method = ("no timings in this trace: judged on the attempt count alone, no time estimate" if wasted is None else
                  f"time of the {len(failed)} failed attempt(s): {wasted:.1f} ms (waits between attempts not included)")
        return Finding(self.kind, trace.trace_id, tool, len(spans), total, wasted, method, [s.span_id for s in spans],
                       fingerprint(self.kind, tool, signature), signature, "sequential", timings,
                       f"{len(spans)} attempts, {len(failed)} failed ({', '.join(errors)}); {outcome}")


def _equal_runs(seq: list, lag: int, min_len: int) -> Iterator[tuple[int, int]]:
    """Maximal runs [j, k) of positions where seq[i] == seq[i + lag], at least min_len (and 1)
    long, in order. The comparisons and the run search run in C (a byte per position and a
    regex over the bytes): a Python loop over 50,000 calls per period was most of the time."""
    matches = bytes(map(operator.eq, seq, seq[lag:]))
    for m in re.finditer(b"\x01{%d,}" % max(1, min_len), matches):
        yield m.start(), m.end()


def _has_shorter_period(block: list[int]) -> bool:
    n = len(block)
    return any(n % q == 0 and block == block[:q] * (n // q) for q in range(1, n))


def detect(trace: Trace, settings: DetectorSettings | None = None) -> list[Finding]:
    """The call findings of one trace: retries, N+1 runs, loops, then redundant calls not already
    inside a loop. A retried call counts once (its last attempt) for the detectors after retries."""
    with gc_paused():  # a 100,000-span trace is 100,000+ live objects each collection re-walks
        return _detect(trace, settings or DetectorSettings())


def _detect(trace: Trace, settings: DetectorSettings) -> list[Finding]:
    calls = tool_calls(trace, settings.nplus1.command_keys)
    retries, calls = RetryDetector(settings.retry).detect(trace, calls)
    findings = retries + NPlusOneDetector(settings.nplus1).detect(trace, calls)
    loops = LoopDetector(settings.loop).detect(trace, calls)
    in_loop = {sid for f in loops for sid in f.span_ids}
    redundant = [f for f in RedundantCallDetector(settings.redundant).detect(trace, calls)
                 if not set(f.span_ids) <= in_loop]
    return findings + loops + redundant
