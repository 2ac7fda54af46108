"""Anthropic Messages API conversations: content blocks `text`, `tool_use` and `tool_result`, as
a request body ({"system", "messages"}), a bare message list, or {"request", "response"} pairs."""
from __future__ import annotations

from typing import Any

from engine.types import flatten_content
from sessions.traces.importers.common import as_list, build_from_messages, need
from sessions.traces.model import Message, ToolCall, Trace, TraceFormatError

NAME = "anthropic"
_BLOCKS = {"tool_use", "tool_result", "thinking", "redacted_thinking"}


def _has_blocks(messages: Any) -> bool:
    if not isinstance(messages, list):
        return False
    for m in messages[:50]:
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, list) and any(isinstance(b, dict) and b.get("type") in _BLOCKS for b in c):
            return True
    return False


def detect(doc: Any) -> bool:
    if isinstance(doc, dict):
        if isinstance(doc.get("request"), dict):
            r = doc.get("response")
            return isinstance(r, dict) and r.get("type") == "message"
        return _has_blocks(doc.get("messages")) or (isinstance(doc.get("system"), (str, list)) and _has_blocks(doc.get("messages")))
    if isinstance(doc, list) and doc:
        if all(isinstance(p, dict) and isinstance(p.get("response"), dict) and p["response"].get("type") == "message" for p in doc[:5]):
            return True
        return _has_blocks(doc)
    return False


def parse(doc: Any) -> list[Trace]:
    if isinstance(doc, list) and doc and isinstance(doc[0], dict) and "response" in doc[0]:
        return [_from_pairs(doc)]
    if isinstance(doc, dict) and "request" in doc:
        return [_from_pairs([doc], "$")]
    if isinstance(doc, dict):
        msgs = _convert(need(doc, "messages", "$", list), "$.messages")
        if doc.get("system"):
            msgs.insert(0, Message("system", flatten_content(doc["system"])))
        return [build_from_messages(Trace("", NAME, "messages"), msgs, model=doc.get("model"))]
    return [build_from_messages(Trace("", NAME, "messages"), _convert(doc, "$"))]


def _convert(raw: list, where: str) -> list[Message]:
    """Blocks -> flat messages: tool_use becomes a tool call of the assistant turn; each
    tool_result becomes its own `tool` message, as in the chat-completions shape."""
    out: list[Message] = []
    for i, m in enumerate(raw):
        w = f"{where}[{i}]"
        role = need(m, "role", w, str)
        content = need(m, "content", w, (str, list))
        if isinstance(content, str):
            out.append(Message(role, content))
            continue
        texts, calls = [], []
        for j, b in enumerate(content):
            bw = f"{w}.content[{j}]"
            kind = need(b, "type", bw, str)
            if kind == "text":
                texts.append(need(b, "text", bw, str))
            elif kind == "tool_use":
                calls.append(ToolCall(need(b, "id", bw, str), need(b, "name", bw, str), b.get("input", {})))
            elif kind == "tool_result":
                out.append(Message("tool", flatten_content(b.get("content")), tool_call_id=need(b, "tool_use_id", bw, str)))
        if texts or calls:
            out.append(Message(role, "\n".join(texts), calls))
    return out


def _from_pairs(pairs: list, where0: str = "") -> Trace:
    best: list[Message] = []
    model = None
    usage: dict[int, tuple[int | None, int | None]] = {}
    for i, p in enumerate(pairs):
        w = where0 or f"$[{i}]"
        req = need(p, "request", w, dict)
        resp = need(p, "response", w, dict)
        msgs = _convert(need(req, "messages", f"{w}.request", list), f"{w}.request.messages")
        if req.get("system"):
            msgs.insert(0, Message("system", flatten_content(req["system"])))
        reply = _convert([{"role": "assistant", "content": as_list(resp.get("content"), f"{w}.response.content")}], f"{w}.response")
        if not reply:
            raise TraceFormatError(f"{w}.response.content", "no text or tool_use block")
        u = resp.get("usage") or {}
        usage[len(msgs)] = (u.get("input_tokens"), u.get("output_tokens"))
        model = resp.get("model") or req.get("model") or model
        if len(msgs) + 1 > len(best):
            best = msgs + reply
    return build_from_messages(Trace("", NAME, "messages"), best, model=model, usage=usage)
