"""Sentry-style detector of write amplification: one agent action fanning out into writes to several
stores (databases, caches, queues, HTTP APIs), and partial failure: some of them failed while the action reported success."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sessions.traces.model import Span, Trace
from sessions.traces.nplus1 import Finding, fingerprint

_SQL_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|UPSERT|MERGE|REPLACE|CREATE|DROP|ALTER|TRUNCATE|COPY)\b", re.I)
_WRITE_OPS = {"insert", "update", "delete", "upsert", "merge", "replace", "create", "drop", "alter", "truncate",
              "set", "hset", "mset", "del", "lpush", "rpush", "sadd", "zadd", "incr", "expire", "xadd", "put",
              "putitem", "updateitem", "deleteitem", "batchwriteitem", "insertone", "insertmany", "updateone",
              "updatemany", "deleteone", "deletemany", "bulkwrite", "putobject", "deleteobject", "copyobject", "index",
              "bulk", "write", "upload", "save"}
_HTTP_WRITE = {"POST", "PUT", "PATCH", "DELETE"}
_PUBLISH = {"publish", "send", "create"}


@dataclass(slots=True)
class WriteAmplificationSettings:
    min_stores: int = 3  # distinct stores written by one action
    min_writes: int = 3  # write spans under the action
    partial_min_stores: int = 2  # a partial failure needs writes to at least this many stores


def store_written(s: Span) -> str | None:
    """The store a span writes to (`postgresql:orders`, `redis`, `http:search.internal`,
    `kafka:events`), or None when the span does not write."""
    a = s.attributes
    system = a.get("db.system.name") or a.get("db.system")
    if system:
        op = str(a.get("db.operation.name") or a.get("db.operation") or "").replace("_", "").lower()
        stmt = a.get("db.query.text") or a.get("db.statement") or ""
        if op in _WRITE_OPS or (isinstance(stmt, str) and _SQL_WRITE.match(stmt)) or (not op and not stmt and _first_word_writes(s.name)):
            where = a.get("db.namespace") or a.get("db.name") or a.get("db.collection.name") or a.get("server.address")
            return f"{system}:{where}" if where else str(system)
        return None
    msys = a.get("messaging.system")
    if msys:
        op = str(a.get("messaging.operation.type") or a.get("messaging.operation") or "").lower()
        if op in _PUBLISH or a.get("span.kind") == "producer":
            dest = a.get("messaging.destination.name") or a.get("messaging.destination")
            return f"{msys}:{dest}" if dest else str(msys)
        return None
    method = a.get("http.request.method") or a.get("http.method")
    if method and str(method).upper() in _HTTP_WRITE and a.get("span.kind", "client") == "client":
        host = a.get("server.address") or a.get("net.peer.name") or a.get("peer.service")
        url = a.get("url.full") or a.get("http.url")
        if not host and isinstance(url, str):
            host = urlsplit(url).hostname
        return f"http:{host}" if host else "http"
    return None


def _first_word_writes(name: str) -> bool:
    return bool(_SQL_WRITE.match(name)) or name.split(" ", 1)[0].lower() in _WRITE_OPS


class WriteAmplificationDetector:
    """Database, queue and HTTP writes grouped by the agent action above them (the nearest tool or
    agent span, else the trace root): writes to min_stores stores or more are amplification; a
    mix of failed and successful writes under an action that did not fail is a partial failure."""

    kind = "write_amplification"
    partial_kind = "partial_write_failure"

    def __init__(self, settings: WriteAmplificationSettings | None = None):
        self.settings = settings or WriteAmplificationSettings()

    def detect(self, trace: Trace) -> list[Finding]:
        by_id = {s.span_id: s for s in trace.spans}
        groups: dict[str, list[tuple[Span, str]]] = {}
        for s in trace.spans:
            store = store_written(s)
            if store is None:
                continue
            action = _action_of(s, by_id)
            if action is not None:
                groups.setdefault(action.span_id, []).append((s, store))
        out = []
        for aid, writes in groups.items():
            action = by_id[aid]
            stores = sorted({store for _, store in writes})
            if len(stores) >= self.settings.min_stores and len(writes) >= self.settings.min_writes:
                out.append(self._finding(trace, self.kind, action, writes, stores,
                                         f"{len(writes)} writes to {len(stores)} stores: {', '.join(stores)}"))
            failed = [w for w in writes if w[0].status == "error"]
            if (failed and len(failed) < len(writes) and action.status != "error"
                    and len(stores) >= self.settings.partial_min_stores):
                bad = sorted({store for _, store in failed})
                good = sorted({store for s, store in writes if s.status != "error"})
                out.append(self._finding(trace, self.partial_kind, action, writes, stores,
                                         f"{len(failed)} of {len(writes)} writes failed ({', '.join(bad)}) while "
                                         f"{', '.join(good)} succeeded and the action reported "
                                         f"{'success' if action.status == 'ok' else 'no error'}: the stores now disagree"))
        return out

    def _finding(self, trace: Trace, kind: str, action: Span, writes: list[tuple[Span, str]], stores: list[str],
                 detail: str) -> Finding:
        spans = [s for s, _ in writes]
        durs = [s.duration for s in spans]
        total = None if any(d is None for d in durs) else sum(durs) / 1e6
        name = action.tool_name or action.name
        if kind == self.kind:
            method = ("no timings in this trace: judged on the stores written alone" if total is None else
                      f"time in the {len(spans)} writes: {total:.1f} ms; an outbox or one store of record would "
                      f"leave one write on the action's path")
            saved = None if total is None else total - max(durs) / 1e6
        else:
            method = "not a time cost: writes that must all happen or none should share a transaction or an outbox"
            saved = None
        sig = f"{name} -> {' + '.join(stores)}"
        timings = "none" if total is None else ("full" if all(s.start_ns is not None for s in spans) else "durations")
        return Finding(kind, trace.trace_id, name, len(spans), total, saved, method, [action.span_id] + [s.span_id for s in spans],
                       fingerprint(kind, name, " + ".join(stores)), sig, "unknown", timings, detail)


def _action_of(s: Span, by_id: dict[str, Any]) -> Span | None:
    """The action a write belongs to; None for a write inside an LLM call (its HTTP POST to the
    model's API is how the call is made, not a write the agent did)."""
    action = root = None
    p = by_id.get(s.parent_id) if s.parent_id else None
    seen = set()
    while p is not None and p.span_id not in seen:
        seen.add(p.span_id)
        if p.kind == "llm":
            return None
        if p.kind in ("tool", "agent") and action is None:
            action = p  # the nearest; walking on only makes sure no LLM call is above
        root = p
        p = by_id.get(p.parent_id) if p.parent_id else None
    return action or root
