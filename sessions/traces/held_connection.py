"""Sentry-style detector of a connection or transaction held open across an LLM call (the pool
starvation pattern): a database or HTTP client span, or a BEGIN...COMMIT pair, whose time encloses an LLM call."""
from __future__ import annotations

import re
from dataclasses import dataclass

from sessions.traces.model import Span, Trace
from sessions.traces.nplus1 import Finding, fingerprint

_BEGIN = re.compile(r"^\s*(BEGIN|START\s+TRANSACTION)\b", re.I)
_END = re.compile(r"^\s*(COMMIT|ROLLBACK|END)\b", re.I)
# span names of a transaction or a checked-out connection that instrumentations record as a span
_HOLDER_NAME = re.compile(r"(transaction|db\.session|connection|pool\.checkout|\bacquire\b)", re.I)


@dataclass(slots=True)
class HeldConnectionSettings:
    min_held_ms: float = 100.0  # how long the connection was held; traces without timings skip this test
    min_llm_share: float = 0.0  # fraction of the held time spent in LLM calls


def _db(s: Span) -> str | None:
    a = s.attributes
    system = a.get("db.system.name") or a.get("db.system")
    return str(system) if system else None


def _statement(s: Span) -> str:
    a = s.attributes
    stmt = a.get("db.query.text") or a.get("db.statement") or a.get("db.operation.name") or a.get("db.operation") or ""
    return stmt if isinstance(stmt, str) and stmt else s.name


def holder(s: Span) -> str | None:
    """What a span holds open while its children run: `postgresql connection`, `http client`."""
    a = s.attributes
    if s.kind == "llm":
        return None
    db = _db(s)
    if db or a.get("db.connection.id") or a.get("db.transaction.id"):
        return f"{db or 'db'} {'transaction' if 'transaction' in s.name.lower() or a.get('db.transaction.id') else 'connection'}"
    if a.get("span.kind") == "client" and (a.get("http.request.method") or a.get("http.method")):
        return "http client"
    if _HOLDER_NAME.search(s.name) and s.kind in ("other", "agent"):
        return "transaction" if "transaction" in s.name.lower() else "connection"
    return None


class HeldConnectionDetector:
    """Two shapes: an LLM call below a client or transaction span (the call runs while the span is
    open), and a BEGIN ... COMMIT of one database under one parent with an LLM call of that parent
    starting in between (the transaction stays open while the model answers)."""

    kind = "held_connection"

    def __init__(self, settings: HeldConnectionSettings | None = None):
        self.settings = settings or HeldConnectionSettings()

    def detect(self, trace: Trace) -> list[Finding]:
        children: dict[str | None, list[Span]] = {}
        for s in trace.spans:
            children.setdefault(s.parent_id, []).append(s)
        out = []
        for s in trace.spans:
            what = holder(s)
            if what is None:
                continue
            inside = [d for d in _descendants(s, children) if d.kind == "llm"]
            if inside:
                f = self._finding(trace, s.name, what, s.duration, inside, [s])
                if f is not None:
                    out.append(f)
        for kids in children.values():
            out += self._transactions(trace, kids, children)
        return out

    def _transactions(self, trace: Trace, kids: list[Span], children: dict) -> list[Finding]:
        out = []
        ordered = sorted(kids, key=lambda s: s.seq)
        for i, begin in enumerate(ordered):
            db = _db(begin)
            if not db or not _BEGIN.match(_statement(begin)):
                continue
            conn = begin.attributes.get("db.connection.id")
            end = next((s for s in ordered[i + 1:] if _db(s) == db and _END.match(_statement(s))
                        and s.attributes.get("db.connection.id") == conn), None)
            if end is None:
                continue
            between = ordered[i + 1:ordered.index(end)]
            llm = [d for s in between for d in [s, *_descendants(s, children)] if d.kind == "llm"]
            if not llm:
                continue
            held = (end.end_ns - begin.start_ns) if begin.start_ns is not None and end.end_ns is not None else None
            f = self._finding(trace, f"{_statement(begin).split()[0].upper()} ... {_statement(end).split()[0].upper()}",
                              f"{db} transaction", held, llm, [begin, end])
            if f is not None:
                out.append(f)
        return out

    def _finding(self, trace: Trace, name: str, what: str, held_ns: int | None, llm: list[Span],
                 holders: list[Span]) -> Finding | None:
        held = None if held_ns is None else held_ns / 1e6
        llm_durs = [s.duration for s in llm]
        llm_ms = None if any(d is None for d in llm_durs) else sum(llm_durs) / 1e6
        if held is not None:
            if held < self.settings.min_held_ms:
                return None
            if llm_ms is not None and held > 0 and llm_ms / held < self.settings.min_llm_share:
                return None
        if held is None:
            method = "no timings in this trace: judged on the nesting alone, no time estimate"
        else:
            method = (f"the {what} was held {held:.1f} ms, {llm_ms:.1f} ms of it waiting on {len(llm)} LLM call(s): "
                      f"release it before the call and take it again after" if llm_ms is not None else
                      f"the {what} was held {held:.1f} ms across {len(llm)} LLM call(s) of unknown duration")
        detail = f"{what} '{name}' open across {len(llm)} LLM call(s)"
        return Finding(self.kind, trace.trace_id, name, len(llm), held, llm_ms, method,
                       [h.span_id for h in holders] + [s.span_id for s in llm], fingerprint(self.kind, what, name),
                       f"{what}: {name}", "unknown", "none" if held is None else "full", detail)


def _descendants(s: Span, children: dict[str | None, list[Span]]) -> list[Span]:
    out, stack, seen = [], list(children.get(s.span_id, [])), {s.span_id}
    while stack:
        d = stack.pop()
        if d.span_id in seen:
            continue
        seen.add(d.span_id)
        out.append(d)
        stack.extend(children.get(d.span_id, []))
    return out
