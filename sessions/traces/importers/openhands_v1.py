"""OpenHands V1 (software-agent-sdk) event logs: events tagged by `kind` (SystemPromptEvent, MessageEvent,
ActionEvent, ObservationEvent, ConversationStateUpdateEvent ...), as JSONL or a JSON array."""
from __future__ import annotations

from typing import Any

from engine.types import flatten_content
from sessions.traces.importers.common import add_tool_span, call_id, need, parse_arguments, parse_time_ns
from sessions.traces.model import (
    INPUT_TOKENS,
    OPERATION,
    OUTPUT_TOKENS,
    REQUEST_MODEL,
    RESPONSE_ID,
    Message,
    Span,
    ToolCall,
    Trace,
)

NAME = "openhands-v1"
_KINDS = {"ActionEvent", "ObservationEvent", "MessageEvent", "SystemPromptEvent", "ConversationStateUpdateEvent",
          "AgentErrorEvent", "UserRejectObservation", "PauseEvent", "CondensationRequest", "Condensation",
          "CondensationSummaryEvent", "LLMCompletionLogEvent", "TokenEvent"}


def _events(doc: Any) -> list | None:
    events = doc.get("events") if isinstance(doc, dict) else doc
    return events if isinstance(events, list) else None


def detect(doc: Any) -> bool:
    events = _events(doc)
    if not events:
        return False
    head = [e for e in events[:20] if isinstance(e, dict)]
    return bool(head) and all(e.get("kind") in _KINDS and "source" in e for e in head)


def parse(doc: Any) -> list[Trace]:
    events = _events(doc) or []
    base = "$.events" if isinstance(doc, dict) else "$"
    t = Trace("", NAME, "openhands")
    root = Span("root", "agent", "openhands", seq=0, attributes={OPERATION: "invoke_agent"})
    spans: list[Span] = [root]
    messages: list[Message] = []
    by_action: dict[str, Span] = {}
    by_response: dict[str, Span] = {}
    unclaimed: list[Span] = []  # LLM calls known from their usage, not yet linked to a response id
    used = (0, 0)
    stamps = []
    for i, e in enumerate(events):
        w = f"{base}[{i}]"
        kind = need(e, "kind", w, str)
        ts = parse_time_ns(e.get("timestamp"), f"{w}.timestamp")
        if ts is not None:
            stamps.append(ts)
        if kind == "SystemPromptEvent":
            messages.append(Message("system", flatten_content(e.get("system_prompt"))))
            if isinstance(e.get("tools"), list) and e["tools"]:
                t.attributes["gen_ai.tool.definitions"] = e["tools"]
        elif kind == "MessageEvent":
            m = e.get("llm_message") if isinstance(e.get("llm_message"), dict) else {}
            role = m.get("role") or ("user" if e.get("source") == "user" else "assistant")
            msg = Message(role, flatten_content(m.get("content")))
            if role == "assistant":
                _call_for(None, spans, unclaimed, by_response, messages).output_messages = [msg]
            messages.append(msg)
        elif kind == "ConversationStateUpdateEvent" and e.get("key") == "stats":
            # the agent's LLM usage is reported as running totals after each call: each step up is one call
            now = _totals(e.get("value"))
            if now is not None and now != used and now >= used:
                llm = _new_llm(spans, messages, ts)
                llm.attributes[INPUT_TOKENS], llm.attributes[OUTPUT_TOKENS] = now[0] - used[0], now[1] - used[1]
                model = _model(e.get("value"))
                if model:
                    llm.attributes[REQUEST_MODEL] = model
                unclaimed.append(llm)
                used = now
        elif kind == "ActionEvent":
            tc = e.get("tool_call") if isinstance(e.get("tool_call"), dict) else {}
            name = str(e.get("tool_name") or tc.get("name") or (e.get("action") or {}).get("kind") or "tool")
            args = parse_arguments(tc.get("arguments")) if tc.get("arguments") is not None else e.get("action")
            call = ToolCall(call_id(e.get("tool_call_id") or tc.get("id")), name, args)
            llm = _call_for(e.get("llm_response_id"), spans, unclaimed, by_response, messages)
            llm.output_messages[0].tool_calls.append(call)
            if not llm.output_messages[0].content:
                llm.output_messages[0].content = flatten_content(e.get("thought"))
            by_action[str(e.get("id"))] = add_tool_span(spans, call, llm, start_ns=ts)
        elif kind in ("ObservationEvent", "AgentErrorEvent", "UserRejectObservation"):
            obs = e.get("observation") if isinstance(e.get("observation"), dict) else {}
            span = by_action.get(str(e.get("action_id")))
            if span is None:
                # the action is not in this file (a cut log): the call still happened and ended here
                span = add_tool_span(spans, ToolCall(call_id(e.get("tool_call_id")), str(e.get("tool_name") or "tool"), None), None)
            span.end_ns = ts
            span.tool_call.result = flatten_content(obs.get("content") if obs else e.get("error"))
            span.status = "error" if obs.get("is_error") or kind != "ObservationEvent" else "ok"
            messages.append(Message("tool", span.tool_call.result or "", tool_call_id=span.tool_call.call_id))
    if stamps:
        root.start_ns, root.end_ns = min(stamps), max(stamps)
    t.messages = messages
    t.spans = spans
    return [t]


def _totals(value: Any) -> tuple[int, int] | None:
    metrics = value.get("usage_to_metrics") if isinstance(value, dict) else None
    agent = metrics.get("default") if isinstance(metrics, dict) else None
    u = agent.get("accumulated_token_usage") if isinstance(agent, dict) else None
    if not isinstance(u, dict):
        return None
    try:
        return int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    except (TypeError, ValueError):
        return None


def _model(value: Any) -> str | None:
    agent = (value.get("usage_to_metrics") or {}).get("default") if isinstance(value, dict) else None
    return agent.get("model_name") if isinstance(agent, dict) else None


def _new_llm(spans: list[Span], messages: list[Message], ts: int | None) -> Span:
    out = Message("assistant", "")
    # only when the usage was reported is known, not when the call began: no duration is invented
    span = Span(f"s{len(spans)}", "llm", "chat", "root", len(spans), attributes={OPERATION: "chat"}, status="ok",
                input_upto=len(messages), output_messages=[out])
    span.attributes["openhands.usage_reported_ns"] = ts
    spans.append(span)
    messages.append(out)
    return span


def _call_for(rid: Any, spans: list[Span], unclaimed: list[Span], by_response: dict[str, Span],
              messages: list[Message]) -> Span:
    """The llm span of a response: the one already linked to its id, else the latest call whose
    usage arrived and is not yet linked, else a new one (usage not reported)."""
    if rid is not None and str(rid) in by_response:
        return by_response[str(rid)]
    llm = unclaimed.pop() if unclaimed else _new_llm(spans, messages, None)
    unclaimed.clear()  # earlier unlinked calls produced no action (a message, a condensation)
    if rid is not None:
        by_response[str(rid)] = llm
        llm.attributes[RESPONSE_ID] = str(rid)
    return llm
