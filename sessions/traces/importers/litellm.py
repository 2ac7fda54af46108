"""LiteLLM completion logs (OpenHands' `log_completions`, LiteLLM callbacks): one call per record,
{"messages", "tools", "response", "timestamp", "latency_sec", "cost"}; JSON, or JSONL of many."""
from __future__ import annotations

from typing import Any

from sessions.traces.importers.common import add_tool_span, completion_attributes, need, openai_message, parse_time_ns
from sessions.traces.model import (
    OPERATION,
    REQUEST_MODEL,
    RESPONSE_ID,
    Span,
    Trace,
    TraceFormatError,
)

NAME = "litellm"


def _is_log(x: Any) -> bool:
    return (isinstance(x, dict) and isinstance(x.get("messages"), list) and isinstance(x.get("response"), dict)
            and ("latency_sec" in x or "kwargs" in x or "cost" in x))


def detect(doc: Any) -> bool:
    if isinstance(doc, list):
        return bool(doc) and all(_is_log(r) for r in doc[:5])
    return _is_log(doc)


def parse(doc: Any) -> list[Trace]:
    if isinstance(doc, dict):
        return [_call(doc, "$", "")]
    return [_call(r, f"$[{i}]", f"[{i}]") for i, r in enumerate(doc)]


def _call(r: Any, w: str, key: str) -> Trace:
    """The log's own call is one llm span, ending at the log's timestamp and lasting latency_sec;
    the earlier turns in its messages are its input, not calls of this record."""
    if not _is_log(r):
        raise TraceFormatError(w, "expected a completion log {\"messages\", \"response\", \"latency_sec\"}")
    msgs = [openai_message(m, f"{w}.messages[{i}]") for i, m in enumerate(r["messages"])]
    resp = r["response"]
    choices = need(resp, "choices", f"{w}.response", list)
    out = [openai_message(need(choices[0], "message", f"{w}.response.choices[0]", dict), f"{w}.response.choices[0].message")] if choices else []
    end = parse_time_ns(r.get("timestamp"), f"{w}.timestamp")
    latency = r.get("latency_sec")
    if latency is not None and not isinstance(latency, (int, float)):
        raise TraceFormatError(f"{w}.latency_sec", f"expected seconds as a number, got {latency!r}")
    start = end - int(round(latency * 1e9)) if end is not None and latency is not None else None
    attrs = completion_attributes(resp, {OPERATION: "chat"})
    if resp.get("id"):
        attrs[RESPONSE_ID] = resp["id"]
    tools = r.get("tools")
    if not tools and isinstance(r.get("kwargs"), dict):
        tools = r["kwargs"].get("tools")
    if isinstance(tools, list) and tools:
        attrs["gen_ai.tool.definitions"] = tools
    if r.get("cost") is not None:
        attrs["gen_ai.usage.cost"] = r["cost"]
    model = attrs.get(REQUEST_MODEL)
    t = Trace("", NAME, f"chat {model}" if model else "chat", source_key=key)
    llm = Span("s0", "llm", f"chat {model or ''}".strip(), None, 0, start, end, None if start is not None else
               (int(round(latency * 1e9)) if latency is not None else None), status="ok", attributes=attrs,
               input_messages=msgs, output_messages=out)
    spans = [llm]
    for m in out:
        for tc in m.tool_calls:
            add_tool_span(spans, tc, llm, "s0")  # asked for, not yet run: its result is in the next log's messages
    t.spans = spans
    return t
