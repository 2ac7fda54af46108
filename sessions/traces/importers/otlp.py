"""OTLP JSON as it is saved: /v1/traces bodies and collector files (resourceSpans), Grafana Tempo exports
(batches), oteltest captures (trace_requests[].pbreq, base64 ids); spans are typed by their attributes."""
from __future__ import annotations

import base64
import binascii
from typing import Any

from sessions.traces.importers import semconv
from sessions.traces.importers.common import as_list, need, parse_time_ns
from sessions.traces.importers.semconv import kind_of
from sessions.traces.importers.spans import order_spans
from sessions.traces.model import OPERATION, Span, Trace, TraceFormatError

NAME = "otlp"
_STATUS = {2: "error", "STATUS_CODE_ERROR": "error", 1: "ok", "STATUS_CODE_OK": "ok"}


def _bodies(doc: Any) -> list[tuple[str, list]] | None:
    """(JSON path, resourceSpans list) of every export request in the document, or None when it
    is not OTLP at all."""
    if isinstance(doc, dict):
        if isinstance(doc.get("resourceSpans"), list):
            return [("$.resourceSpans", doc["resourceSpans"])]
        if isinstance(doc.get("batches"), list):  # Tempo's GET /api/traces/{id}
            return [("$.batches", doc["batches"])]
        reqs = doc.get("trace_requests")
        if isinstance(reqs, list) and ("metric_requests" in doc or "log_requests" in doc or reqs):
            out = []
            for i, r in enumerate(reqs):
                body = r.get("pbreq") if isinstance(r, dict) else None
                if not isinstance(body, dict):
                    return None
                out.append((f"$.trace_requests[{i}].pbreq.resourceSpans", body.get("resourceSpans") or []))
            return out
        return None
    if isinstance(doc, list) and doc and all(isinstance(d, dict) and "resourceSpans" in d for d in doc[:5]):
        return [(f"$[{b}].resourceSpans", body.get("resourceSpans") or []) for b, body in enumerate(doc)]
    return None


def detect(doc: Any) -> bool:
    bodies = _bodies(doc)
    return bodies is not None and (bool(bodies) or isinstance(doc, dict) and "trace_requests" in doc)


def parse(doc: Any) -> list[Trace]:
    groups: dict[str, list[Span]] = {}
    for bw, resource_spans in _bodies(doc) or []:
        for i, rs in enumerate(as_list(resource_spans, bw)):
            for j, ss in enumerate(as_list(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or [], f"{bw}[{i}].scopeSpans")):
                sw = f"{bw}[{i}].scopeSpans[{j}].spans"
                k = 0
                try:
                    # Places are relative to the span and only spelled out on an error: building a
                    # JSON path per span and attribute cost more than reading the span.
                    for k, sp in enumerate(as_list(ss.get("spans") or [], sw)):
                        tid = sp.get("traceId") if type(sp) is dict else None
                        if type(tid) is not str:
                            tid = need(sp, "traceId", "", str)
                        tid = hex_id(tid)
                        group = groups.get(tid)
                        if group is None:
                            group = groups[tid] = []
                        group.append(_span(sp))
                except TraceFormatError as e:
                    if e.where != sw:
                        raise TraceFormatError(f"{sw}[{k}]{e.where}", e.reason) from None
                    raise
    traces = []
    for tid, spans in groups.items():
        root = next((s for s in spans if s.parent_id is None), spans[0])
        t = Trace("", NAME, root.name, source_key=tid, attributes={"otel.trace_id": tid})
        t.spans = order_spans(spans)
        traces.append(t)
    return traces


_HEX = frozenset("0123456789abcdefABCDEF")


def hex_id(v: str) -> str:
    """Trace and span ids as lowercase hex: protobuf JSON (oteltest, some Tempo answers) writes
    the id bytes in base64, OTLP/JSON in hex."""
    if _HEX.issuperset(v):
        return v.lower() if not v.islower() and not v.isdigit() else v
    if len(v) in (12, 24) and v.endswith("="):
        try:
            raw = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            return v
        if len(raw) in (8, 16):
            return raw.hex()
    return v


def attr_value(v: Any, where: str) -> Any:
    if not isinstance(v, dict):
        raise TraceFormatError(where, "expected an AnyValue object")
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:  # int64 travels as a string in OTLP JSON
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            raise TraceFormatError(f"{where}.intValue", f"not an integer: {v['intValue']!r}") from None
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [attr_value(x, f"{where}.arrayValue.values[{n}]") for n, x in enumerate((v["arrayValue"] or {}).get("values") or [])]
    if "kvlistValue" in v:
        return {kv["key"]: attr_value(kv.get("value"), f"{where}.kvlistValue") for kv in (v["kvlistValue"] or {}).get("values") or []}
    return None


def attributes(raw: Any) -> dict[str, Any]:
    """A KeyValue list -> dict. String and int values (nearly all of them) take a short path;
    anything else, malformed or not, makes the whole list go through _attributes_checked, which
    handles every AnyValue and names the place of a bad one."""
    attrs: dict[str, Any] = {}
    try:
        for kv in raw:
            key = kv["key"]
            v = kv["value"]
            if type(key) is not str:
                break
            value = v.get("stringValue", _ABSENT)
            if value is _ABSENT:
                value = int(v["intValue"])  # KeyError for the other kinds: the checked path
            attrs[key] = value
        else:
            return attrs
    except (TypeError, KeyError, AttributeError, ValueError):
        pass
    return _attributes_checked(raw)


_ABSENT = object()


def _attributes_checked(raw: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for n, kv in enumerate(raw):
        attrs[need(kv, "key", f".attributes[{n}]", str)] = attr_value(kv.get("value"), f".attributes[{n}].value")
    return attrs


_SPAN_KIND = {2: "server", 3: "client", 4: "producer", 5: "consumer", "SPAN_KIND_SERVER": "server",
              "SPAN_KIND_CLIENT": "client", "SPAN_KIND_PRODUCER": "producer", "SPAN_KIND_CONSUMER": "consumer"}


def _span(sp: dict) -> Span:
    """One OTLP span; error places are relative to it (`.attributes[3].value`)."""
    attrs = attributes(sp.get("attributes") or [])
    name = sp.get("name") or attrs.get(OPERATION) or "span"
    name = name if type(name) is str else str(name)
    kind = kind_of(attrs, name)
    st = sp.get("status")
    status = _STATUS.get(st.get("code") if st else None, "unset")
    if status == "error" and st.get("message"):
        attrs.setdefault("error.message", st["message"])
    span_kind = _SPAN_KIND.get(sp.get("kind"))
    if span_kind is not None:
        attrs["span.kind"] = span_kind
    span_id = sp.get("spanId")
    if type(span_id) is not str:
        span_id = need(sp, "spanId", "", str)
    parent = sp.get("parentSpanId") or None
    # positional and with its attributes: keyword arguments, and a default dict made only to be
    # replaced, are measurable at 23,000 spans per 20 MB
    s = Span(hex_id(span_id), kind, name, hex_id(parent) if type(parent) is str else parent, 0,
             parse_time_ns(sp.get("startTimeUnixNano"), ".startTimeUnixNano"),
             parse_time_ns(sp.get("endTimeUnixNano"), ".endTimeUnixNano"), None, None, status, attrs)
    if kind == "tool":
        s.tool_call = semconv.tool_call(s)
    elif kind == "llm":
        if sp.get("events"):
            s.input_messages, s.output_messages = semconv.event_messages(
                [(ev.get("name"), attributes(ev.get("attributes") or [])) for ev in sp["events"] if isinstance(ev, dict)])
        semconv.fill_llm(s)
    return s
