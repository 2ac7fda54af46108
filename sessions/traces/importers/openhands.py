"""OpenHands event streams (action and observation events with "id", "timestamp", "source", "cause",
"tool_call_metadata"), alone or in evaluation output (output.jsonl: one instance a line, events under `history`)."""
from __future__ import annotations

from typing import Any

from engine.types import flatten_content
from sessions.traces.importers.common import add_tool_span, completion_attributes, need, parse_time_ns
from sessions.traces.model import (
    OPERATION,
    RESPONSE_ID,
    Message,
    Span,
    ToolCall,
    Trace,
)

NAME = "openhands"
# bookkeeping fields of action args that are not arguments of the tool
_NOISE = {"thought", "security_risk", "confirmation_state", "is_confirmed", "hidden", "blocking", "is_input",
          "keep_prompt", "impl_source", "include_extra", "wait_for_response", "image_urls", "file_urls", "mode",
          "action_risk", "images_urls", "kernel_init_code"}
_QUIET = {"agent_state_changed", "recall", "null", "change_agent_state", "system"}
_FLAT_ARGS = {"command", "code", "path", "content", "url", "thought", "outputs"}


def _is_event(e: Any) -> bool:
    return isinstance(e, dict) and ("action" in e or "observation" in e)


def _is_instance(d: Any) -> bool:
    """One evaluation instance: its events under `history`, beside instance fields and metrics."""
    return (isinstance(d, dict) and isinstance(d.get("history"), list) and bool(d["history"])
            and ("metrics" in d or "instance_id" in d or "instruction" in d) and _is_event(d["history"][0]))


def detect(doc: Any) -> bool:
    if _is_instance(doc) or (isinstance(doc, list) and doc and all(_is_instance(d) for d in doc[:5])):
        return True
    events = doc.get("events") if isinstance(doc, dict) else doc
    if not isinstance(events, list) or not events:
        return False
    head = [e for e in events[:20] if isinstance(e, dict)]
    return bool(head) and all("source" in e and _is_event(e) for e in head)


def parse(doc: Any) -> list[Trace]:
    if _is_instance(doc):
        return [_instance(doc, "$", "")]
    if isinstance(doc, list) and doc and _is_instance(doc[0]):
        return [_instance(d, f"$[{i}]", f"[{i}]") for i, d in enumerate(doc)]
    events = doc["events"] if isinstance(doc, dict) else doc
    base = "$.events" if isinstance(doc, dict) else "$"
    return [_events(events, base, Trace("", NAME, "openhands"), {})]


def _instance(d: dict, w: str, key: str) -> Trace:
    issue = d.get("issue") if isinstance(d.get("issue"), dict) else {}
    name = d.get("instance_id") or issue.get("title")
    t = Trace("", NAME, str(name or "openhands"), source_key=str(d.get("instance_id") or key),
              attributes={k: d[k] for k in ("instance_id", "success", "error") if isinstance(d.get(k), (str, int, float, bool))})
    metrics = d.get("metrics") if isinstance(d.get("metrics"), dict) else {}
    latency = {r.get("response_id"): r.get("latency") for r in metrics.get("response_latencies") or []
               if isinstance(r, dict) and isinstance(r.get("latency"), (int, float))}
    return _events(d["history"], f"{w}.history", t, latency)


def _events(events: list, base: str, t: Trace, latency: dict[str, float]) -> Trace:
    """A tool span runs from its action's timestamp to its observation's; an LLM call ends when its
    first action is issued and lasts its recorded latency (when the file has metrics). The run spans
    the first event to the last, so the time between events is not lost."""
    root = Span("root", "agent", t.name, seq=0, attributes={OPERATION: "invoke_agent"})
    spans: list[Span] = [root]
    by_action: dict[Any, Span] = {}
    pending: list[Span] = []  # actions without an observation yet, for files without `cause`
    llm_by_response: dict[str, Span] = {}
    messages: list[Message] = []
    stamps: list[int] = []
    # Files from before tool_call_metadata (the resolver's) record neither the model's responses nor
    # who spoke; there every action after the task message is one model response.
    legacy = not any(isinstance(e, dict) and ("tool_call_metadata" in e or "source" in e) for e in events)
    for i, e in enumerate(events):
        w = f"{base}[{i}]"
        if not _is_event(e):
            need(e, "action", w)
        ts = parse_time_ns(e.get("timestamp"), f"{w}.timestamp")
        if ts is not None:
            stamps.append(ts)
        if "observation" in e:
            span = by_action.get(e["cause"]) if "cause" in e else (pending[-1] if pending else None)
            kind = e["observation"]
            if span is not None and span.tool_call is not None and span.tool_call.result is None:
                span.tool_call.result = flatten_content(e.get("content"))
                span.end_ns = ts
                span.status = "error" if kind == "error" or _exit_code(e) not in (None, 0) else "ok"
                messages.append(Message("tool", span.tool_call.result, tool_call_id=span.tool_call.call_id))
                if span in pending:
                    pending.remove(span)
            continue
        action = need(e, "action", w, str)
        args = e.get("args") if isinstance(e.get("args"), dict) else {k: v for k, v in e.items() if k in _FLAT_ARGS}
        if action == "system":  # the system prompt and the tools offered, sent with every call
            messages.append(Message("system", flatten_content(args.get("content"))))
            if isinstance(args.get("tools"), list) and args["tools"]:
                t.attributes["gen_ai.tool.definitions"] = args["tools"]
            continue
        if action in _QUIET:
            continue
        if action == "message":
            source = e.get("source") or ("user" if not messages else "agent")
            text = flatten_content(args.get("content", e.get("message")))
            if legacy and source == "agent":
                _legacy_llm(spans, messages, text)
            else:
                messages.append(Message("user" if source == "user" else "assistant", text))
            continue
        meta = e.get("tool_call_metadata") if isinstance(e.get("tool_call_metadata"), dict) else {}
        if legacy:
            llm = _legacy_llm(spans, messages, flatten_content(args.get("thought")))
        else:
            llm = _llm_span(meta, spans, llm_by_response, messages, e, ts, latency)
        name = meta.get("function_name") or action
        arguments = {k: v for k, v in args.items() if k not in _NOISE}
        call = ToolCall(meta.get("tool_call_id"), name, arguments)
        if llm is not None:
            llm.output_messages[0].tool_calls.append(call)
        span = add_tool_span(spans, call, llm, start_ns=ts, attributes={"openhands.action": action})
        if "id" in e:
            by_action[e["id"]] = span
        pending.append(span)
    if stamps:
        root.start_ns, root.end_ns = min(stamps), max(stamps)
    t.messages = messages
    t.spans = spans
    return t


def _legacy_llm(spans: list[Span], messages: list[Message], said: str) -> Span:
    out = Message("assistant", said)
    span = Span(f"s{len(spans)}", "llm", "chat", "root", len(spans), attributes={OPERATION: "chat"}, status="ok",
                input_upto=len(messages), output_messages=[out])
    messages.append(out)
    spans.append(span)
    return span


def _exit_code(e: dict) -> Any:
    extras = e.get("extras") if isinstance(e.get("extras"), dict) else e
    meta = extras.get("metadata") if isinstance(extras.get("metadata"), dict) else {}
    code = meta.get("exit_code", extras.get("exit_code"))
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _llm_span(meta: dict, spans: list[Span], seen: dict[str, Span], messages: list[Message], e: dict,
              ts: int | None, latency: dict[str, float]) -> Span | None:
    """Actions issued by one model response share its id: one llm span per response."""
    resp = meta.get("model_response") if isinstance(meta.get("model_response"), dict) else None
    if resp is None:
        return None
    rid = str(resp.get("id") or len(seen))
    if rid in seen:
        return seen[rid]
    attrs = completion_attributes(resp, {OPERATION: "chat", RESPONSE_ID: rid})
    thought = e.get("args", {}).get("thought") if isinstance(e.get("args"), dict) else e.get("thought")
    out = Message("assistant", flatten_content(thought))
    lat = latency.get(rid)
    start = ts - int(round(lat * 1e9)) if ts is not None and lat is not None else None
    span = Span(f"s{len(spans)}", "llm", "chat", "root", len(spans), start, ts if start is not None else None,
                attributes=attrs, status="ok", input_upto=len(messages), output_messages=[out])
    messages.append(out)
    spans.append(span)
    seen[rid] = span
    return span
