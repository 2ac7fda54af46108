"""Anthropic Messages API conversations: content blocks `text`, `tool_use` and `tool_result`, as a request
body ({"system", "messages"}), a bare message list, {"request", "response"} pairs, or recorded HTTP exchanges."""
from __future__ import annotations

from typing import Any

from engine.types import flatten_content
from sessions.traces import fastjson
from sessions.traces.importers.common import add_tool_span, as_list, build_from_messages, need
from sessions.traces.model import (
    INPUT_TOKENS,
    OPERATION,
    OUTPUT_TOKENS,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    Message,
    Span,
    ToolCall,
    Trace,
    TraceFormatError,
)

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


def _is_exchange(p: Any) -> bool:
    """A recorded HTTP exchange with the Messages API ({"request": {"body"}, "response": {"body"}}),
    as the SDK's own test snapshots and most HTTP recorders keep them."""
    if not isinstance(p, dict) or not isinstance(p.get("request"), dict) or not isinstance(p.get("response"), dict):
        return False
    body = p["request"].get("body")
    return isinstance(body, dict) and isinstance(body.get("messages"), list) and "body" in p["response"]


def detect(doc: Any) -> bool:
    if isinstance(doc, list) and doc and all(_is_exchange(p) for p in doc[:5]):
        return True
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
    if isinstance(doc, list) and doc and _is_exchange(doc[0]):
        return [_from_exchanges(doc)]
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


def _from_exchanges(exchanges: list) -> Trace:
    """One llm span per HTTP exchange, failed ones included (a 429 and its retries are three calls,
    the first two errors), each with the messages it sent; one tool span per tool_use, its result
    taken from the later request that answered it. The recordings carry no times."""
    t = Trace("", NAME, "messages")
    root = Span("root", "agent", "messages", seq=0, attributes={OPERATION: "invoke_agent"})
    spans = [root]
    results: dict[str, tuple[str, bool]] = {}
    for i, p in enumerate(exchanges):
        w = f"$[{i}]"
        if not _is_exchange(p):
            raise TraceFormatError(w, "expected a recorded exchange {\"request\": {\"body\"}, \"response\": {\"body\"}}")
        for m in p["request"]["body"]["messages"]:
            for b in m.get("content") if isinstance(m, dict) and isinstance(m.get("content"), list) else []:
                if isinstance(b, dict) and b.get("type") == "tool_result" and b.get("tool_use_id"):
                    results[b["tool_use_id"]] = (flatten_content(b.get("content")), bool(b.get("is_error")))
    for i, p in enumerate(exchanges):
        w = f"$[{i}]"
        req, resp = p["request"], p["response"]
        body = req["body"]
        msgs = _convert(body["messages"], f"{w}.request.body.messages")
        if body.get("system"):
            msgs.insert(0, Message("system", flatten_content(body["system"])))
        reply = _response_message(resp.get("body"), f"{w}.response.body")
        status = _int(resp.get("status_code"))
        attrs: dict[str, Any] = {OPERATION: "chat", "http.response.status_code": status}
        model = body.get("model") or (reply or {}).get("model")
        if model:
            attrs[REQUEST_MODEL] = model
        if isinstance(reply, dict) and reply.get("model"):
            attrs[RESPONSE_MODEL] = reply["model"]
        headers = req.get("headers") if isinstance(req.get("headers"), dict) else {}
        if headers.get("x-stainless-retry-count") is not None:
            attrs["http.request.resend_count"] = _int(headers["x-stainless-retry-count"])
        if isinstance(body.get("tools"), list):
            attrs["gen_ai.tool.definitions"] = body["tools"]
        if body.get("max_tokens") is not None:
            attrs["gen_ai.request.max_tokens"] = body["max_tokens"]
        failed = reply is None or reply.get("type") == "error" or (status is not None and status >= 400)
        out: list[Message] = []
        if failed:
            err = (reply or {}).get("error") if isinstance((reply or {}).get("error"), dict) else {}
            attrs["error.type"] = err.get("type") or (f"http {status}" if status else "error")
            if err.get("message"):
                attrs["error.message"] = str(err["message"])[:2000]
        else:
            usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
            if usage.get("input_tokens") is not None:
                attrs[INPUT_TOKENS] = usage["input_tokens"]
            if usage.get("output_tokens") is not None:
                attrs[OUTPUT_TOKENS] = usage["output_tokens"]
            out = _convert([{"role": "assistant", "content": reply.get("content") or []}], f"{w}.response.body")
        llm = Span(f"s{len(spans)}", "llm", f"chat {model or ''}".strip(), "root", len(spans),
                   status="error" if failed else "ok", attributes=attrs, input_messages=msgs, output_messages=out)
        spans.append(llm)
        for m in out:
            for tc in m.tool_calls:
                res = results.get(tc.call_id or "")
                if res is not None:
                    tc.result = res[0]
                add_tool_span(spans, tc, llm, status="unset" if res is None else ("error" if res[1] else "ok"))
    t.spans = spans
    return t


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _response_message(body: Any, where: str) -> dict | None:
    """The response body: a message or an error object, or a recorded event stream whose events
    are folded back into the message they streamed."""
    if isinstance(body, dict):
        return body
    if not isinstance(body, str):
        return None
    if body.lstrip()[:1] == "{":
        try:
            return fastjson.loads(body.strip())
        except ValueError:
            raise TraceFormatError(where, "response body is neither JSON nor an event stream") from None
    msg: dict | None = None
    partial: dict[int, list[str]] = {}
    for line in body.splitlines():
        if not line.startswith("data:"):
            continue
        try:
            ev = fastjson.loads(line[5:].strip())
        except ValueError:
            continue
        typ = ev.get("type") if isinstance(ev, dict) else None
        if typ == "message_start":
            msg = dict(ev.get("message") or {})
            msg["content"] = list(msg.get("content") or [])
        elif msg is None:
            continue
        elif typ == "content_block_start":
            msg["content"].append(dict(ev.get("content_block") or {}))
        elif typ == "content_block_delta":
            d = ev.get("delta") or {}
            blocks = msg["content"]
            if not blocks:
                continue
            b = blocks[ev.get("index", len(blocks) - 1)] if ev.get("index", 0) < len(blocks) else blocks[-1]
            if d.get("type") == "text_delta":
                b["text"] = b.get("text", "") + d.get("text", "")
            elif d.get("type") == "input_json_delta":
                partial.setdefault(ev.get("index", 0), []).append(d.get("partial_json", ""))
        elif typ == "message_delta":
            usage = ev.get("usage") or {}
            msg.setdefault("usage", {}).update({k: v for k, v in usage.items() if v is not None})
            msg.update({k: v for k, v in (ev.get("delta") or {}).items() if v is not None})
        elif typ == "error":
            return ev
    if msg is not None:
        for idx, parts in partial.items():
            if idx < len(msg["content"]):
                try:
                    msg["content"][idx]["input"] = fastjson.loads("".join(parts)) if "".join(parts) else {}
                except ValueError:
                    msg["content"][idx]["input"] = "".join(parts)
    return msg
