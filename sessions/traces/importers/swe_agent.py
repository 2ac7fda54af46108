"""SWE-agent `.traj` files: {"trajectory": [{response, thought, action, observation, execution_time,
query?}], "history": [...], "info": {...}}. Actions are shell commands; only their run time is known."""
from __future__ import annotations

from typing import Any

from engine.types import flatten_content
from sessions.traces.importers.common import REQUESTED_BY, as_list, need, openai_message
from sessions.traces.model import OPERATION, REQUEST_MODEL, TOOL_NAME, Message, Span, ToolCall, Trace, TraceFormatError

NAME = "swe-agent"


def detect(doc: Any) -> bool:
    if not isinstance(doc, dict) or not isinstance(doc.get("trajectory"), list):
        return False
    steps = doc["trajectory"][:3]
    return all(isinstance(s, dict) and "action" in s and "observation" in s for s in steps)


def parse(doc: Any) -> list[Trace]:
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    model = None  # .traj files name the model only inside a YAML replay config
    t = Trace("", NAME, str(doc.get("environment") or info.get("instance_id") or "swe-agent"),
              attributes={k: info[k] for k in ("exit_status", "submission") if k in info and isinstance(info[k], (str, int, float))})
    history = doc.get("history") if isinstance(doc.get("history"), list) else []
    t.messages = [_history_message(m, f"$.history[{i}]") for i, m in enumerate(history)]
    assistant_at = [i for i, m in enumerate(t.messages) if m.role == "assistant"]
    root = Span("root", "agent", t.name, seq=0, attributes={OPERATION: "invoke_agent"})
    spans = [root]
    for k, step in enumerate(as_list(doc["trajectory"], "$.trajectory")):
        w = f"$.trajectory[{k}]"
        action = need(step, "action", w, str)
        attrs: dict[str, Any] = {OPERATION: "chat"}
        if model:
            attrs[REQUEST_MODEL] = model
        llm = Span(f"s{len(spans)}", "llm", "chat", "root", len(spans), attributes=attrs, status="ok",
                   output_messages=[Message("assistant", flatten_content(step.get("response") or step.get("thought")))])
        if isinstance(step.get("query"), list):  # SWE-agent >= 1.1 keeps what the LM was shown
            llm.input_messages = [_history_message(m, f"{w}.query[{j}]") for j, m in enumerate(step["query"])]
        elif k < len(assistant_at):
            llm.input_upto = assistant_at[k]
        spans.append(llm)
        command = action.strip()
        if not command:
            continue
        tool = command.split()[0]
        call = ToolCall(None, tool, {"command": command}, flatten_content(step.get("observation")))
        dur = step.get("execution_time")
        if dur is not None and not isinstance(dur, (int, float)):
            raise TraceFormatError(f"{w}.execution_time", f"expected seconds as a number, got {dur!r}")
        spans.append(Span(f"s{len(spans)}", "tool", f"execute_tool {tool}", "root", len(spans),
                          duration_ns=None if dur is None else int(round(dur * 1e9)),
                          attributes={OPERATION: "execute_tool", TOOL_NAME: tool, REQUESTED_BY: llm.span_id},
                          tool_call=call, status="ok"))
    t.spans = spans
    return [t]


def _history_message(m: Any, where: str) -> Message:
    if isinstance(m, dict) and "tool_calls" in m and m.get("tool_calls"):
        return openai_message(m, where)
    role = need(m, "role", where, str)
    return Message(role, flatten_content(m.get("content")))
