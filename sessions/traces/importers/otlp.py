"""OTLP JSON (the collector's file exporter and /v1/traces bodies): resourceSpans -> scopeSpans ->
spans with gen_ai.* attributes; times are unix ns strings. One trace per traceId."""
from __future__ import annotations

import json
from typing import Any

from sessions.traces import fastjson
from sessions.traces.importers.common import as_list, need, parse_arguments, parse_time_ns
from sessions.traces.importers.spans import chat_messages, order_spans, output_messages
from sessions.traces.model import (
    OPERATION,
    TOOL_ARGUMENTS,
    TOOL_CALL_ID,
    TOOL_NAME,
    TOOL_RESULT,
    Span,
    ToolCall,
    Trace,
    TraceFormatError,
)

NAME = "otlp"
_KIND = {"chat": "llm", "text_completion": "llm", "generate_content": "llm", "execute_tool": "tool",
         "invoke_agent": "agent", "create_agent": "agent", "retrieval": "retrieval", "embeddings": "other"}
_STATUS = {2: "error", "STATUS_CODE_ERROR": "error", 1: "ok", "STATUS_CODE_OK": "ok"}
_MESSAGE_KEYS = (("gen_ai.input.messages", True), ("gen_ai.output.messages", False))


def detect(doc: Any) -> bool:
    if isinstance(doc, list) and doc:
        return all(isinstance(d, dict) and "resourceSpans" in d for d in doc[:5])
    return isinstance(doc, dict) and isinstance(doc.get("resourceSpans"), list)


def parse(doc: Any) -> list[Trace]:
    bodies = doc if isinstance(doc, list) else [doc]
    groups: dict[str, list[Span]] = {}
    for b, body in enumerate(bodies):
        bw = f"$[{b}]" if isinstance(doc, list) else "$"
        for i, rs in enumerate(as_list(need(body, "resourceSpans", bw), f"{bw}.resourceSpans")):
            for j, ss in enumerate(as_list(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or [], f"{bw}.resourceSpans[{i}].scopeSpans")):
                sw = f"{bw}.resourceSpans[{i}].scopeSpans[{j}].spans"
                k = 0
                try:
                    # Places are relative to the span and only spelled out on an error: building a
                    # JSON path per span and attribute cost more than reading the span.
                    for k, sp in enumerate(as_list(ss.get("spans") or [], sw)):
                        tid = sp.get("traceId") if type(sp) is dict else None
                        if type(tid) is not str:
                            tid = need(sp, "traceId", "", str)
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


def _span(sp: dict) -> Span:
    """One OTLP span; error places are relative to it (`.attributes[3].value`)."""
    attrs = attributes(sp.get("attributes") or [])
    op = attrs.get(OPERATION)
    kind = _KIND.get(op, "other")
    st = sp.get("status")
    status = _STATUS.get(st.get("code") if st else None, "unset")
    span_id = sp.get("spanId")
    if type(span_id) is not str:
        span_id = need(sp, "spanId", "", str)
    name = sp.get("name") or op or "span"
    # positional and with its attributes: keyword arguments, and a default dict made only to be
    # replaced, are measurable at 23,000 spans per 20 MB
    s = Span(span_id, kind, name if type(name) is str else str(name), sp.get("parentSpanId") or None, 0,
             parse_time_ns(sp.get("startTimeUnixNano"), ".startTimeUnixNano"),
             parse_time_ns(sp.get("endTimeUnixNano"), ".endTimeUnixNano"), None, None, status, attrs)
    if kind == "tool":
        name = str(attrs.get(TOOL_NAME) or s.name.removeprefix("execute_tool ").strip())
        attrs.setdefault(TOOL_NAME, name)
        s.tool_call = ToolCall(attrs.get(TOOL_CALL_ID), name, parse_arguments(attrs.pop(TOOL_ARGUMENTS, None)),
                               _result(attrs.pop(TOOL_RESULT, None)))
    elif kind == "llm":
        for key, is_input in _MESSAGE_KEYS:
            raw = attrs.pop(key, None)
            if raw is None:
                continue
            value = raw
            if isinstance(raw, str) and raw[:1] in "[{":
                try:
                    value = fastjson.loads(raw)
                except ValueError as e:
                    raise TraceFormatError(f".attributes[{key}]", f"not valid JSON: {e}") from None
            if is_input:
                s.input_messages = chat_messages(value, f".attributes[{key}]")
            else:
                s.output_messages = output_messages(value, f".attributes[{key}]")
    return s


def _result(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)
