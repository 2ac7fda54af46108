"""Jaeger query-API JSON (GET /api/traces/{id}, the UI's "Download JSON"): {"data": [{traceID, spans,
processes}]} with spans {spanID, operationName, references, startTime us, duration us, tags}; one trace per traceID."""
from __future__ import annotations

from typing import Any

from sessions.traces.importers import semconv
from sessions.traces.importers.common import as_list, need
from sessions.traces.importers.spans import order_spans
from sessions.traces.model import Span, Trace, TraceFormatError

NAME = "jaeger"


def _traces(doc: Any) -> list | None:
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        doc = doc["data"]
    if isinstance(doc, dict) and isinstance(doc.get("spans"), list):
        doc = [doc]
    if isinstance(doc, list) and doc and all(isinstance(t, dict) and isinstance(t.get("spans"), list) and "traceID" in t for t in doc[:5]):
        return doc
    return None


def detect(doc: Any) -> bool:
    ts = _traces(doc)
    if ts is None:
        return False
    head = [s for t in ts[:3] for s in t["spans"][:5]]
    return all(isinstance(s, dict) and "spanID" in s and "operationName" in s for s in head)


def parse(doc: Any) -> list[Trace]:
    base = "$.data" if isinstance(doc, dict) and "data" in doc else "$"
    out = []
    for i, tr in enumerate(_traces(doc) or []):
        w = f"{base}[{i}]" if base != "$" or isinstance(doc, list) else "$"
        tid = str(tr["traceID"])
        processes = tr.get("processes") if isinstance(tr.get("processes"), dict) else {}
        raw = as_list(tr["spans"], f"{w}.spans")
        spans = [_span(s, f"{w}.spans[{j}]", processes) for j, s in enumerate(raw) if not _repeat(raw, j)]
        root = next((s for s in spans if s.parent_id is None), spans[0] if spans else None)
        t = Trace("", NAME, root.name if root else tid, source_key=tid, attributes={"otel.trace_id": tid})
        t.spans = order_spans(spans)
        out.append(t)
    return out


def _repeat(raw: list, j: int) -> bool:
    """Jaeger answers with a span twice when it stored it twice (a client that retried the export);
    its UI drops the copy, and so does this. A different span under a known id is still an error."""
    sp = raw[j]
    sid = sp.get("spanID") if isinstance(sp, dict) else None
    return sid is not None and any(isinstance(o, dict) and o.get("spanID") == sid and o == sp for o in raw[:j])


def _tags(raw: Any, w: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for n, kv in enumerate(raw or []):
        key = need(kv, "key", f"{w}[{n}]", str)
        v = kv.get("value")
        typ = kv.get("type")
        if typ == "int64" and isinstance(v, str):
            try:
                v = int(v)
            except ValueError:
                pass
        elif typ == "float64" and isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                pass
        elif typ == "bool" and isinstance(v, str):
            v = v == "true"
        attrs[key] = v
    return attrs


def _micros(v: Any, where: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise TraceFormatError(where, f"expected microseconds, got {type(v).__name__}")
    try:
        return int(v) * 1000
    except ValueError:
        raise TraceFormatError(where, f"expected microseconds, got {v!r}") from None


def _span(sp: Any, w: str, processes: dict) -> Span:
    span_id = str(need(sp, "spanID", w))
    name = str(sp.get("operationName") or "span")
    attrs = _tags(sp.get("tags"), f"{w}.tags")
    proc = processes.get(sp.get("processID")) if sp.get("processID") else sp.get("process")
    if isinstance(proc, dict) and proc.get("serviceName"):
        attrs.setdefault("service.name", proc["serviceName"])
    parent = sp.get("parentSpanID")
    for ref in sp.get("references") or []:
        if isinstance(ref, dict) and ref.get("refType") == "CHILD_OF" and ref.get("spanID"):
            parent = ref["spanID"]
            break
    start = _micros(sp.get("startTime"), f"{w}.startTime")
    dur = _micros(sp.get("duration"), f"{w}.duration")
    status = "error" if attrs.get("error") in (True, "true") or attrs.get("otel.status_code") == "ERROR" else (
        "ok" if attrs.get("otel.status_code") == "OK" else "unset")
    kind = semconv.kind_of(attrs, name)
    s = Span(span_id, kind, name, str(parent) if parent else None, 0, start,
             start + dur if start is not None and dur is not None else None, dur if start is None else None,
             None, status, attrs)
    if kind == "tool":
        s.tool_call = semconv.tool_call(s)
    elif kind == "llm":
        semconv.fill_llm(s)
    return s
