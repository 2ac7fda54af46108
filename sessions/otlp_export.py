"""Sessions, bench runs and stored agent traces out as OTLP JSON (the collector's file format and
/v1/traces body) with OpenTelemetry GenAI attribute names, the ones the OTLP importer reads, so a
Phoenix, Jaeger or Langfuse instance shows them and `workbench import` takes them back."""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sessions.errors import SessionsError
from sessions.store import Store
from sessions.traces.model import (
    INPUT_TOKENS,
    OPERATION,
    OUTPUT_TOKENS,
    REQUEST_MODEL,
    RESPONSE_ID,
    RESPONSE_MODEL,
    TOOL_ARGUMENTS,
    TOOL_CALL_ID,
    TOOL_NAME,
    TOOL_RESULT,
    Message,
    Span,
    Trace,
)

SCOPE = {"name": "inference-workbench", "version": "0.1.0"}
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
FINISH_REASONS = "gen_ai.response.finish_reasons"
PROVIDER = "gen_ai.provider.name"
TTFT = "gen_ai.server.time_to_first_token"  # seconds, the semantic conventions' metric name
OPERATIONS = {"llm": "chat", "tool": "execute_tool", "agent": "invoke_agent", "retrieval": "retrieval"}
SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 1, 3
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def hex_id(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def any_value(v: Any) -> dict[str, Any] | None:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}  # int64 travels as a string in OTLP JSON
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [x for x in (any_value(i) for i in v) if x is not None]}}
    if v is None:
        return None
    return {"stringValue": json.dumps(v, ensure_ascii=False, default=str)}


def key_values(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for k, v in attrs.items():
        value = any_value(v)
        if value is not None:
            out.append({"key": k, "value": value})
    return out


def genai_messages(messages: list[Message], output: bool = False, finish: str | None = None) -> str:
    """Messages in the GenAI conventions' shape: role + parts (text, tool_call, tool_call_response)."""
    out = []
    for m in messages:
        parts: list[dict[str, Any]] = []
        if m.role == "tool":
            parts.append({"type": "tool_call_response", "id": m.tool_call_id, "response": m.content})
        elif m.content:
            parts.append({"type": "text", "content": m.content})
        for c in m.tool_calls:
            parts.append({"type": "tool_call", "id": c.call_id, "name": c.name, "arguments": c.arguments})
        msg: dict[str, Any] = {"role": m.role, "parts": parts}
        if output and finish:
            msg["finish_reason"] = finish
        out.append(msg)
    return json.dumps(out, ensure_ascii=False)


def _span(trace_id: str, span_id: str, parent: str | None, name: str, start: int | None, end: int | None,
          attrs: dict[str, Any], kind: int = SPAN_KIND_INTERNAL, error: str | None = None) -> dict[str, Any]:
    sp: dict[str, Any] = {"traceId": trace_id, "spanId": span_id, "name": name, "kind": kind}
    if parent:
        sp["parentSpanId"] = parent
    if start is not None:
        sp["startTimeUnixNano"] = str(start)
    if end is not None:
        sp["endTimeUnixNano"] = str(end)
    sp["attributes"] = key_values(attrs)
    if error is not None:
        sp["status"] = {"code": 2, "message": error}
    return sp


def document(spans: list[dict[str, Any]], service: str) -> dict[str, Any]:
    resource = {"attributes": key_values({"service.name": service})}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": SCOPE, "spans": spans}]}]}


# ---- a session (chat, serve, bench run, replay) ----

def session_document(store: Store, session_id: str) -> dict[str, Any]:
    """One trace: a root span for the session, a `chat {model}` span per request, its input the
    conversation up to its reply. Engine times (perf_counter ns) become unix ns by the session's
    clock offset."""
    from sessions.queries import get_session

    s = get_session(store, session_id, token_times=False)
    offset = s.get("clock_offset_ns") or 0
    tid = hex_id("session:" + s["id"], 32)
    root = hex_id("root:" + s["id"], 16)
    msgs = [Message(m["role"], m["content"] or "") for m in s["messages"]]
    reply_seq = {m["request_id"]: m["seq"] for m in s["messages"] if m["request_id"] and m["role"] == "assistant"}
    spans = []
    for r in s["requests"]:
        start = r["arrival_ns"] + offset
        end = None if r["finished_ns"] is None else r["finished_ns"] + offset
        finish = r["finish_reason"]
        params = r.get("params") or {}
        model = r["model"] or s.get("model") or ""
        attrs: dict[str, Any] = {
            OPERATION: "chat", PROVIDER: r["backend"] or s.get("backend"), REQUEST_MODEL: model,
            RESPONSE_MODEL: model, RESPONSE_ID: r["id"],
            FINISH_REASONS: [finish] if finish else None,
            INPUT_TOKENS: r["prompt_tokens"], OUTPUT_TOKENS: r["output_tokens"],
            "gen_ai.usage.cache_read.input_tokens": r.get("cached_prompt_tokens"),
            "gen_ai.request.max_tokens": params.get("max_tokens"),
            "gen_ai.request.temperature": _float(params.get("temperature")),
            "gen_ai.request.top_p": _float(params.get("top_p")),
            "gen_ai.request.seed": params.get("seed"),
            TTFT: None if r["ttft_ms"] is None else r["ttft_ms"] / 1e3,
            "gen_ai.conversation.id": s["id"],
        }
        seq = reply_seq.get(r["id"])
        if seq is not None:
            attrs[INPUT_MESSAGES] = genai_messages(msgs[:seq])
            attrs[OUTPUT_MESSAGES] = genai_messages([msgs[seq]], output=True, finish=finish)
        spans.append(_span(tid, hex_id("request:" + r["id"], 16), root, f"chat {model}".strip(), start, end, attrs,
                           SPAN_KIND_CLIENT, r["error"] if r["status"] == "error" else None))
    starts = [int(sp["startTimeUnixNano"]) for sp in spans]
    ends = [int(sp["endTimeUnixNano"]) for sp in spans if "endTimeUnixNano" in sp]
    root_attrs = {"workbench.session.id": s["id"], "workbench.session.kind": s["kind"],
                  "workbench.session.title": s.get("title"), "gen_ai.conversation.id": s["id"]}
    name = f"{s['kind']} {s.get('title') or s['id']}"
    spans.insert(0, _span(tid, root, None, name, min(starts, default=None), max(ends, default=None), root_attrs))
    return document(spans, f"workbench {s['kind']}")


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


# ---- a stored agent trace ----

def trace_document(trace: Trace) -> dict[str, Any]:
    """The trace's spans with their GenAI attributes; ids that are not OTLP hex are hashed to it
    (parents follow), times kept to the nanosecond, untimed spans left without times."""
    tid = trace.source_key if _HEX32.match(trace.source_key or "") else hex_id("trace:" + trace.trace_id, 32)
    ids = {s.span_id: s.span_id if _HEX16.match(s.span_id) else hex_id("span:" + s.span_id, 16) for s in trace.spans}
    spans = []
    for s in sorted(trace.spans, key=lambda x: x.seq):
        spans.append(_trace_span(trace, s, tid, ids))
    return document(spans, f"workbench import ({trace.format})")


def _trace_span(trace: Trace, s: Span, tid: str, ids: dict[str, str]) -> dict[str, Any]:
    attrs = dict(s.attributes)
    op = OPERATIONS.get(s.kind)
    if op and OPERATION not in attrs:
        attrs[OPERATION] = op
    if s.kind == "llm":
        inputs = trace.input_for(s)
        if inputs:
            attrs[INPUT_MESSAGES] = genai_messages(inputs)
        if s.output_messages:
            attrs[OUTPUT_MESSAGES] = genai_messages(s.output_messages, output=True)
    if s.tool_call is not None:
        attrs[TOOL_NAME] = s.tool_call.name
        attrs[TOOL_CALL_ID] = s.tool_call.call_id
        attrs[TOOL_ARGUMENTS] = s.tool_call.arguments if isinstance(s.tool_call.arguments, str) else \
            json.dumps(s.tool_call.arguments, ensure_ascii=False)
        attrs[TOOL_RESULT] = s.tool_call.result
    end = s.end_ns
    if end is None and s.start_ns is not None and s.duration_ns is not None:
        end = s.start_ns + s.duration_ns
    if s.first_token_ns is not None and s.start_ns is not None:
        attrs.setdefault(TTFT, (s.first_token_ns - s.start_ns) / 1e9)
    parent = ids.get(s.parent_id) if s.parent_id else None
    sp = _span(tid, ids[s.span_id], parent, s.name, s.start_ns, end, attrs,
               SPAN_KIND_CLIENT if s.kind == "llm" else SPAN_KIND_INTERNAL)
    if s.status == "error":
        sp["status"] = {"code": 2}
    elif s.status == "ok":
        sp["status"] = {"code": 1}
    return sp


# ---- either, by id ----

def export_document(store: Store, ident: str) -> tuple[str, str, dict[str, Any]]:
    """(kind, full id, OTLP document) for a session or bench run id, or a trace id (unique
    prefixes are enough); a prefix of both kinds is ambiguous."""
    from sessions.queries import resolve_prefix
    from sessions.traces.store import load_trace

    found = []
    for table, kind in (("sessions", "session"), ("traces", "trace")):
        try:
            found.append((kind, resolve_prefix(store, table, ident, missing="", ambiguous=f"id {ident!r} is ambiguous "
                                               f"({{n}} {table} match); give more characters")))
        except SessionsError as e:
            if str(e):
                raise
    if not found:
        raise SessionsError(f"no session, bench run or trace with id {ident!r}")
    if len(found) > 1:
        raise SessionsError(f"id {ident!r} names both a session and a trace; give more characters")
    kind, full = found[0]
    if kind == "session":
        return kind, full, session_document(store, full)
    return kind, full, trace_document(load_trace(store, full))
