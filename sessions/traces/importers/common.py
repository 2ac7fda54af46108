"""Helpers every importer shares: exact ISO-time parsing to ns, JSON-path error places, and the
builder that turns a chat conversation (messages with tool calls) into llm and tool spans."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from engine.types import flatten_content
from sessions.traces import fastjson
from sessions.traces.model import (
    INPUT_TOKENS,
    OPERATION,
    OUTPUT_TOKENS,
    REQUEST_MODEL,
    TOOL_CALL_ID,
    TOOL_NAME,
    Message,
    Span,
    ToolCall,
    Trace,
    TraceFormatError,
)

# which llm span asked for a tool call; lets the detector tell fan-out from one-by-one calls
REQUESTED_BY = "workbench.requested_by"

_ISO = re.compile(r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:[.,](\d+))?(Z|z|[+-]\d\d:?\d\d)?$")


def parse_time_ns(value: Any, where: str) -> int | None:
    """ISO 8601 (any number of fraction digits, naive = UTC) or an epoch number -> unix ns.
    Exact to the digit: floats would lose the nanoseconds OTLP and Langfuse carry."""
    if type(value) is str and value.isdigit():  # OTLP's ns strings, one per span end: no detours
        n = int(value)
        if float(n) > 1e17:
            return n
        return parse_time_ns(n, where)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TraceFormatError(where, f"expected a time, got {value!r}")
    if isinstance(value, (int, float)):
        v = float(value)
        if v > 1e17:
            return int(value)
        if v > 1e14:
            return int(value * 1_000)
        if v > 1e11:
            return int(value * 1_000_000)
        return int(round(value * 1_000_000_000))
    if not isinstance(value, str):
        raise TraceFormatError(where, f"expected a time, got {type(value).__name__}")
    if value.isdigit():
        return parse_time_ns(int(value), where)
    m = _ISO.match(value.strip())
    if not m:
        raise TraceFormatError(where, f"not an ISO 8601 time: {value!r}")
    day, clock, frac, tz = m.groups()
    if tz in (None, "Z", "z"):
        tz = "+00:00"
    try:
        dt = datetime.fromisoformat(f"{day}T{clock}{tz}")
    except ValueError as e:
        raise TraceFormatError(where, f"bad time {value!r}: {e}") from None
    ns = (frac or "").ljust(9, "0")[:9]
    return int(dt.astimezone(timezone.utc).timestamp()) * 1_000_000_000 + int(ns or 0)


def need(obj: Any, key: str, where: str, kind: type | tuple[type, ...] | None = None) -> Any:
    if not isinstance(obj, dict):
        raise TraceFormatError(where, f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise TraceFormatError(f"{where}.{key}", "missing")
    v = obj[key]
    if kind is not None and not isinstance(v, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TraceFormatError(f"{where}.{key}", f"expected {_json_type(names)}, got {_json_type(type(v).__name__)}")
    return v


def _json_type(name: str) -> str:
    return {"dict": "an object", "list": "an array", "str": "a string", "int": "a number", "float": "a number"}.get(name, name)


def as_list(obj: Any, where: str) -> list:
    if not isinstance(obj, list):
        raise TraceFormatError(where, f"expected an array, got {_json_type(type(obj).__name__)}")
    return obj


def maybe_json(v: Any) -> Any:
    """A value that some exports keep as JSON text and others as the value itself: the value."""
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return fastjson.loads(v)
        except ValueError:
            return v
    return v


def parse_arguments(raw: Any) -> Any:
    """OpenAI sends arguments as a JSON string; keep the parsed object when it parses."""
    if isinstance(raw, str):
        try:
            return fastjson.loads(raw)
        except ValueError:
            return raw
    return raw


def call_id(v: Any) -> str | None:
    """Tool-call ids as strings: some exporters write a list (Microsoft Agent Framework: run id and
    call id) or a number, and the id is a key wherever calls are matched to their results."""
    if v is None or type(v) is str:
        return v
    if isinstance(v, list):
        ids = [str(x) for x in v if x is not None]
        return next((x for x in ids if x.startswith(("call_", "toolu_"))), ids[-1] if ids else None)
    return json.dumps(v, sort_keys=True) if isinstance(v, dict) else str(v)


def result_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def openai_message(m: Any, where: str) -> Message:
    """One chat-completions message (the request or response shape) -> Message."""
    role = need(m, "role", where, str)
    calls = []
    for j, tc in enumerate(m.get("tool_calls") or []):
        w = f"{where}.tool_calls[{j}]"
        fn = need(tc, "function", w, dict)
        name = need(fn, "name", f"{w}.function", str)
        calls.append(ToolCall(call_id(tc.get("id")), name, parse_arguments(fn.get("arguments"))))
    if m.get("function_call"):  # the pre-tools shape
        fc = m["function_call"]
        calls.append(ToolCall(None, need(fc, "name", f"{where}.function_call", str), parse_arguments(fc.get("arguments"))))
    return Message(role, flatten_content(m.get("content")), calls, call_id(m.get("tool_call_id")), m.get("name"))


def completion_attributes(resp: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
    """Model and token counts of a chat.completion response (OpenAI's and LiteLLM's shape) in
    the GenAI attribute names."""
    if resp.get("model"):
        attrs[REQUEST_MODEL] = resp["model"]
    usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
    if usage.get("prompt_tokens") is not None:
        attrs[INPUT_TOKENS] = usage["prompt_tokens"]
    if usage.get("completion_tokens") is not None:
        attrs[OUTPUT_TOKENS] = usage["completion_tokens"]
    return attrs


def add_tool_span(spans: list[Span], call: ToolCall, asked_by: Span | None, parent: str | None = "root",
                  **fields: Any) -> Span:
    """The tool span of one call in a message-log or event format, appended to `spans` (named
    s<N>, seq N): the GenAI tool attributes, and which llm span asked for it when that is known."""
    attrs: dict[str, Any] = {OPERATION: "execute_tool", TOOL_NAME: call.name}
    if call.call_id:
        attrs[TOOL_CALL_ID] = call.call_id
    if asked_by is not None:
        attrs[REQUESTED_BY] = asked_by.span_id
    attrs.update(fields.pop("attributes", {}))
    span = Span(f"s{len(spans)}", "tool", f"execute_tool {call.name}", parent, len(spans), attributes=attrs,
                tool_call=call, **fields)
    spans.append(span)
    return span


def build_from_messages(
    trace: Trace,
    messages: list[Message],
    *,
    model: str | None = None,
    usage: dict[int, tuple[int | None, int | None]] | None = None,
) -> Trace:
    """A conversation -> one agent root span, one llm span per assistant message (its input is
    every message before it) and one tool span per tool call, with results matched by call id.
    No times: message logs carry none, and none are invented."""
    trace.messages = messages
    root = Span("root", "agent", trace.name or "agent", seq=0, attributes={OPERATION: "invoke_agent"})
    spans = [root]
    results_by_id: dict[str, str] = {}
    positional: list[str] = []  # tool results without ids, matched in order
    for m in messages:
        if m.role == "tool":
            if m.tool_call_id:
                results_by_id[m.tool_call_id] = m.content
            else:
                positional.append(m.content)
    pos = 0
    for i, m in enumerate(messages):
        if m.role != "assistant":
            continue
        attrs: dict[str, Any] = {OPERATION: "chat"}
        if model:
            attrs[REQUEST_MODEL] = model
        if usage and i in usage:
            inp, out = usage[i]
            if inp is not None:
                attrs[INPUT_TOKENS] = inp
            if out is not None:
                attrs[OUTPUT_TOKENS] = out
        llm = Span(f"s{len(spans)}", "llm", f"chat {model or ''}".strip(), "root", len(spans), attributes=attrs,
                   input_upto=i, output_messages=[m], status="ok")
        spans.append(llm)
        for tc in m.tool_calls:
            if tc.call_id and tc.call_id in results_by_id:
                tc.result = results_by_id[tc.call_id]
            elif not tc.call_id and pos < len(positional):
                tc.result = positional[pos]
                pos += 1
            add_tool_span(spans, tc, llm, status="ok" if tc.result is not None else "unset")
    trace.spans = spans
    return trace
