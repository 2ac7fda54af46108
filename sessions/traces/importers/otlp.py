"""OTLP JSON (the collector's file exporter and /v1/traces bodies): resourceSpans -> scopeSpans ->
spans with gen_ai.* attributes; times are unix ns strings. One trace per traceId."""
from __future__ import annotations

import json
from typing import Any

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
                for k, sp in enumerate(as_list(ss.get("spans") or [], f"{bw}.resourceSpans[{i}].scopeSpans[{j}].spans")):
                    w = f"{bw}.resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                    groups.setdefault(str(need(sp, "traceId", w, str)), []).append(_span(sp, w))
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


def _span(sp: dict, w: str) -> Span:
    attrs: dict[str, Any] = {}
    for n, kv in enumerate(sp.get("attributes") or []):
        attrs[need(kv, "key", f"{w}.attributes[{n}]", str)] = attr_value(kv.get("value"), f"{w}.attributes[{n}].value")
    op = attrs.get(OPERATION)
    kind = _KIND.get(op, "other")
    code = (sp.get("status") or {}).get("code")
    status = {2: "error", "STATUS_CODE_ERROR": "error", 1: "ok", "STATUS_CODE_OK": "ok"}.get(code, "unset")
    s = Span(str(need(sp, "spanId", w, str)), kind, str(sp.get("name") or op or "span"), sp.get("parentSpanId") or None,
             start_ns=parse_time_ns(sp.get("startTimeUnixNano"), f"{w}.startTimeUnixNano"),
             end_ns=parse_time_ns(sp.get("endTimeUnixNano"), f"{w}.endTimeUnixNano"), status=status)
    if kind == "tool":
        name = str(attrs.get(TOOL_NAME) or s.name.removeprefix("execute_tool ").strip())
        attrs.setdefault(TOOL_NAME, name)
        s.tool_call = ToolCall(attrs.get(TOOL_CALL_ID), name, parse_arguments(attrs.pop(TOOL_ARGUMENTS, None)),
                               _result(attrs.pop(TOOL_RESULT, None)))
    elif kind == "llm":
        for key, setter in (("gen_ai.input.messages", "in"), ("gen_ai.output.messages", "out")):
            raw = attrs.pop(key, None)
            if raw is None:
                continue
            value = raw
            if isinstance(raw, str) and raw[:1] in "[{":
                try:
                    value = json.loads(raw)
                except ValueError as e:
                    raise TraceFormatError(f"{w}.attributes[{key}]", f"not valid JSON: {e}") from None
            if setter == "in":
                s.input_messages = chat_messages(value, f"{w}.attributes[{key}]")
            else:
                s.output_messages = output_messages(value, f"{w}.attributes[{key}]")
    s.attributes = attrs
    return s


def _result(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)
