"""Shared by the span-based formats (OTLP, Langfuse, LangSmith): message payloads in their many
shapes -> Message lists, and ordering spans by start time (or file order) with seq numbers."""
from __future__ import annotations

from typing import Any

from engine.types import flatten_content
from sessions.traces.importers.common import call_id, openai_message, parse_arguments
from sessions.traces.model import Message, Span, ToolCall

# LangChain message types -> chat roles
_LC_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool",
             "HumanMessage": "user", "AIMessage": "assistant", "SystemMessage": "system", "ToolMessage": "tool",
             "AIMessageChunk": "assistant"}


def one_message(m: Any, where: str) -> Message | None:
    if isinstance(m, str):
        return Message("user", m)
    if not isinstance(m, dict):
        return None
    if "lc" in m and isinstance(m.get("kwargs"), dict):  # LangChain's serialized message
        kw = m["kwargs"]
        role = _LC_ROLES.get(kw.get("type") or (m.get("id") or [""])[-1], "user")
        return _lc(kw, role)
    if "type" in m and "role" not in m and m["type"] in _LC_ROLES:
        return _lc(m.get("data", m) if isinstance(m.get("data"), dict) else m, _LC_ROLES[m["type"]])
    if "parts" in m and "role" in m:  # OTel GenAI input/output messages
        texts, calls, answered = [], [], None
        for p in m["parts"] or []:
            if not isinstance(p, dict):
                continue
            if p.get("type") == "text":
                texts.append(flatten_content(p.get("content")))
            elif p.get("type") == "tool_call":
                calls.append(ToolCall(call_id(p.get("id")), str(p.get("name")), parse_arguments(p.get("arguments"))))
            elif p.get("type") == "tool_call_response":
                answered = call_id(p.get("id"))
                texts.append(flatten_content(p.get("response") if isinstance(p.get("response"), str) else str(p.get("response"))))
        return Message(m["role"], "\n".join(texts), calls, answered)
    if "role" in m:
        return openai_message(m, where)
    return None


def _lc(kw: dict, role: str) -> Message:
    calls = [ToolCall(call_id(c.get("id")), str(c.get("name")), c.get("args")) for c in kw.get("tool_calls") or [] if isinstance(c, dict)]
    return Message(role, flatten_content(kw.get("content")), calls, call_id(kw.get("tool_call_id")))


def chat_messages(payload: Any, where: str) -> list[Message] | None:
    """An LLM input in any of the usual shapes: a message list, {"messages": [...]}, LangChain's
    nested [[...]] batches, or a plain prompt string. None when there is no input at all."""
    if payload is None:
        return None
    if isinstance(payload, dict):
        for key in ("messages", "prompts", "input"):
            if key in payload:
                return chat_messages(payload[key], f"{where}.{key}")
        m = one_message(payload, where)
        return [m] if m else []
    if isinstance(payload, str):
        return [Message("user", payload)]
    if isinstance(payload, list):
        if payload and isinstance(payload[0], list):  # LangChain batches: one conversation per prompt
            payload = payload[0]
        out = []
        for i, m in enumerate(payload):
            msg = one_message(m, f"{where}[{i}]")
            if msg is not None:
                out.append(msg)
        return out
    return [Message("user", str(payload))]


def output_messages(payload: Any, where: str) -> list[Message]:
    if payload is None:
        return []
    if isinstance(payload, dict):
        if isinstance(payload.get("choices"), list) and payload["choices"]:
            c = payload["choices"][0]
            return output_messages(c.get("message", c) if isinstance(c, dict) else c, f"{where}.choices[0]")
        if isinstance(payload.get("generations"), list) and payload["generations"]:
            g = payload["generations"][0]
            g = g[0] if isinstance(g, list) and g else g
            if isinstance(g, dict):
                return output_messages(g.get("message") or g.get("text"), f"{where}.generations[0]")
        if "role" in payload or "lc" in payload or ("type" in payload and payload["type"] in _LC_ROLES):
            m = one_message(payload, where)
            return [Message("assistant", m.content, m.tool_calls)] if m else []
        for key in ("output", "content", "text", "completion"):
            if key in payload:
                return output_messages(payload[key], f"{where}.{key}")
    if isinstance(payload, list):
        out = []
        for i, m in enumerate(payload):
            out.extend(output_messages(m, f"{where}[{i}]"))
        return out
    return [Message("assistant", flatten_content(payload))]


def order_spans(spans: list[Span]) -> list[Span]:
    """Order of issue: start time where known, else file order; parents that are not in the
    file are dropped so the tree has real roots."""
    ids = {s.span_id for s in spans}
    for s in spans:
        if s.parent_id is not None and s.parent_id not in ids:
            s.parent_id = None
    keyed = sorted(enumerate(spans), key=lambda p: (p[1].start_ns is None, p[1].start_ns or 0, p[0]))
    out = []
    for n, (_, s) in enumerate(keyed):
        s.seq = n
        out.append(s)
    return out
