"""SWE-agent `.traj` files ({"trajectory": [{action, observation, execution_time ...}], "history", "info"},
or the history alone): tools are the recorded function calls, else the command; only step times are known."""
from __future__ import annotations

from typing import Any

from engine.types import flatten_content
from sessions.traces import fastjson
from sessions.traces.importers.common import add_tool_span, as_list, call_id, need, openai_message, parse_arguments
from sessions.traces.model import (
    OPERATION,
    REQUEST_MODEL,
    Message,
    Span,
    ToolCall,
    Trace,
    TraceFormatError,
)

NAME = "swe-agent"


def detect(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    if isinstance(doc.get("trajectory"), list):
        steps = doc["trajectory"][:3]
        return all(isinstance(s, dict) and "action" in s and "observation" in s for s in steps)
    # the history alone (SWE-agent's demonstrations): messages tagged with the agent and message_type
    hist = doc.get("history")
    return (isinstance(hist, list) and bool(hist) and set(doc) <= {"history", "info", "environment", "replay_config"}
            and all(isinstance(m, dict) and "role" in m and ("agent" in m or "message_type" in m) for m in hist[:5]))


def _model(doc: dict) -> str | None:
    """.traj files name the model only in the replay config (YAML-as-JSON text or an object)."""
    cfg = doc.get("replay_config")
    if isinstance(cfg, str) and cfg[:1] == "{":
        try:
            cfg = fastjson.loads(cfg)
        except ValueError:
            return None
    if isinstance(cfg, dict):
        agent = cfg.get("agent") if isinstance(cfg.get("agent"), dict) else {}
        model = agent.get("model") if isinstance(agent.get("model"), dict) else {}
        name = model.get("name") or model.get("model_name")
        return name if isinstance(name, str) else None
    return None


def parse(doc: Any) -> list[Trace]:
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    model = _model(doc)
    t = Trace("", NAME, str(doc.get("environment") or info.get("instance_id") or "swe-agent"),
              attributes={k: info[k] for k in ("exit_status", "submission") if k in info and isinstance(info[k], (str, int, float))})
    history = as_list(doc.get("history") or [], "$.history")
    t.messages = [_history_message(m, f"$.history[{i}]") for i, m in enumerate(history)]
    # the assistant turns that issued an action, in order: step k of the trajectory is the k-th
    actions = [i for i, m in enumerate(history) if isinstance(m, dict) and m.get("role") == "assistant"
               and (m.get("message_type") in (None, "action"))]
    root = Span("root", "agent", t.name, seq=0, attributes={OPERATION: "invoke_agent"})
    spans = [root]
    if isinstance(doc.get("trajectory"), list):
        steps = [(need(step, "action", f"$.trajectory[{k}]", str), step, f"$.trajectory[{k}]")
                 for k, step in enumerate(as_list(doc["trajectory"], "$.trajectory"))]
    else:
        steps = [(str(history[i].get("action") or ""), None, f"$.history[{i}]") for i in actions]
    for k, (action, step, w) in enumerate(steps):
        at = actions[k] if k < len(actions) else None
        attrs: dict[str, Any] = {OPERATION: "chat"}
        if model:
            attrs[REQUEST_MODEL] = model
        said = step.get("response") or step.get("thought") if step else history[at].get("content")
        llm = Span(f"s{len(spans)}", "llm", "chat", "root", len(spans), attributes=attrs, status="ok",
                   output_messages=[Message("assistant", flatten_content(said))])
        if step is not None and isinstance(step.get("query"), list):  # SWE-agent >= 1.1 keeps what the LM was shown
            llm.input_messages = [_history_message(m, f"{w}.query[{j}]") for j, m in enumerate(step["query"])]
        elif at is not None:
            llm.input_upto = at
        spans.append(llm)
        calls = _recorded_calls(history[at]) if at is not None else []
        if not calls:
            command = action.strip()
            if not command:
                continue
            calls = [ToolCall(None, command.split()[0], {"command": command})]
        observation = flatten_content(step.get("observation")) if step else _observation(history, at)
        dur = step.get("execution_time") if step else None
        if isinstance(dur, str):
            try:
                dur = float(dur)
            except ValueError:
                pass
        if dur is not None and not isinstance(dur, (int, float)):
            raise TraceFormatError(f"{w}.execution_time", f"expected seconds as a number, got {dur!r}")
        for call in calls:
            call.result = observation
            # one step runs its calls one after another; the step's time is theirs together
            add_tool_span(spans, call, llm, status="ok",
                          duration_ns=None if dur is None or len(calls) > 1 else int(round(dur * 1e9)))
    t.spans = spans
    return [t]


def _recorded_calls(m: dict) -> list[ToolCall]:
    """The function calls the model actually made (`bash` with {"command": "ls"}), when it made any."""
    out = []
    for tc in m.get("tool_calls") or []:
        fn = tc.get("function") if isinstance(tc, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out.append(ToolCall(call_id(tc.get("id")), fn["name"], parse_arguments(fn.get("arguments"))))
    return out


def _observation(history: list, at: int) -> str | None:
    """History-only files: what came back is the next tool (or user) message after the action."""
    for m in history[at + 1:]:
        if isinstance(m, dict) and m.get("role") in ("tool", "user"):
            return flatten_content(m.get("content"))
        if isinstance(m, dict) and m.get("role") == "assistant":
            return None
    return None


def _history_message(m: Any, where: str) -> Message:
    if isinstance(m, dict) and "tool_calls" in m and m.get("tool_calls"):
        return openai_message(m, where)
    role = need(m, "role", where, str)
    ids = m.get("tool_call_ids") if isinstance(m, dict) else None
    return Message(role, flatten_content(m.get("content")), tool_call_id=call_id(ids) if role == "tool" and ids else None)
