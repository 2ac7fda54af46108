"""OpenHands event streams: a list of action and observation events ({"id", "timestamp", "source",
"action"|"observation", "args"|"extras", "cause", "tool_call_metadata"}). A tool span runs from its
action's timestamp to its observation's; LLM calls carry tokens but no start time, so none is stored."""
from __future__ import annotations

from typing import Any

from engine.types import flatten_content
from sessions.traces.importers.common import REQUESTED_BY, need, parse_time_ns
from sessions.traces.model import (
    INPUT_TOKENS,
    OPERATION,
    OUTPUT_TOKENS,
    REQUEST_MODEL,
    RESPONSE_ID,
    TOOL_CALL_ID,
    TOOL_NAME,
    Message,
    Span,
    ToolCall,
    Trace,
)

NAME = "openhands"
# bookkeeping fields of action args that are not arguments of the tool
_NOISE = {"thought", "security_risk", "confirmation_state", "is_confirmed", "hidden", "blocking", "is_input",
          "keep_prompt", "impl_source", "include_extra", "wait_for_response", "image_urls", "file_urls", "mode"}
_QUIET = {"agent_state_changed", "recall", "null", "change_agent_state", "system"}


def detect(doc: Any) -> bool:
    events = doc.get("events") if isinstance(doc, dict) else doc
    if not isinstance(events, list) or not events:
        return False
    head = [e for e in events[:20] if isinstance(e, dict)]
    return bool(head) and all("source" in e and ("action" in e or "observation" in e) for e in head)


def parse(doc: Any) -> list[Trace]:
    events = doc["events"] if isinstance(doc, dict) else doc
    base = "$.events" if isinstance(doc, dict) else "$"
    t = Trace("", NAME, "openhands")
    root = Span("root", "agent", "openhands", seq=0, attributes={OPERATION: "invoke_agent"})
    spans: list[Span] = [root]
    by_action: dict[Any, Span] = {}
    llm_by_response: dict[str, Span] = {}
    messages: list[Message] = []
    for i, e in enumerate(events):
        w = f"{base}[{i}]"
        need(e, "source", w)
        ts = parse_time_ns(e.get("timestamp"), f"{w}.timestamp")
        if "observation" in e:
            span = by_action.get(e.get("cause"))
            kind = e["observation"]
            if span is not None and span.tool_call is not None:
                span.tool_call.result = flatten_content(e.get("content"))
                span.end_ns = ts
                span.status = "error" if kind == "error" else "ok"
                messages.append(Message("tool", span.tool_call.result, tool_call_id=span.tool_call.call_id))
            continue
        action = need(e, "action", w, str)
        if action in _QUIET:
            continue
        args = e.get("args") if isinstance(e.get("args"), dict) else {}
        if action == "message":
            messages.append(Message("user" if e["source"] == "user" else "assistant", flatten_content(args.get("content", e.get("message")))))
            continue
        meta = e.get("tool_call_metadata") if isinstance(e.get("tool_call_metadata"), dict) else {}
        llm = _llm_span(meta, spans, llm_by_response, messages, e)
        name = meta.get("function_name") or action
        arguments = {k: v for k, v in args.items() if k not in _NOISE}
        call = ToolCall(meta.get("tool_call_id"), name, arguments)
        if llm is not None:
            llm.output_messages[0].tool_calls.append(call)
        attrs = {OPERATION: "execute_tool", TOOL_NAME: name, "openhands.action": action}
        if call.call_id:
            attrs[TOOL_CALL_ID] = call.call_id
        if llm is not None:
            attrs[REQUESTED_BY] = llm.span_id
        span = Span(f"s{len(spans)}", "tool", f"execute_tool {name}", "root", len(spans), start_ns=ts,
                    attributes=attrs, tool_call=call)
        spans.append(span)
        by_action[e.get("id")] = span
    t.messages = messages
    t.spans = spans
    return [t]


def _llm_span(meta: dict, spans: list[Span], seen: dict[str, Span], messages: list[Message], e: dict) -> Span | None:
    """Actions issued by one model response share its id: one llm span per response."""
    resp = meta.get("model_response") if isinstance(meta.get("model_response"), dict) else None
    if resp is None:
        return None
    rid = str(resp.get("id") or len(seen))
    if rid in seen:
        return seen[rid]
    attrs: dict[str, Any] = {OPERATION: "chat", RESPONSE_ID: rid}
    if resp.get("model"):
        attrs[REQUEST_MODEL] = resp["model"]
    usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
    if usage.get("prompt_tokens") is not None:
        attrs[INPUT_TOKENS] = usage["prompt_tokens"]
    if usage.get("completion_tokens") is not None:
        attrs[OUTPUT_TOKENS] = usage["completion_tokens"]
    thought = e.get("args", {}).get("thought") if isinstance(e.get("args"), dict) else None
    out = Message("assistant", flatten_content(thought))
    span = Span(f"s{len(spans)}", "llm", "chat", "root", len(spans), attributes=attrs, status="ok",
                input_upto=len(messages), output_messages=[out])
    messages.append(out)
    spans.append(span)
    seen[rid] = span
    return span
