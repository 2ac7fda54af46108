"""OpenAI chat-completions logs: a message list, a {"messages": [...]} conversation, or a log of
{"request", "response"} pairs (JSON array or JSONL). They carry no timings."""
from __future__ import annotations

from typing import Any

from sessions.traces.importers.common import build_from_messages, need, openai_message
from sessions.traces.model import INPUT_TOKENS, OUTPUT_TOKENS, Message, Trace, TraceFormatError

NAME = "openai"


def _is_message(x: Any) -> bool:
    return isinstance(x, dict) and isinstance(x.get("role"), str) and ("content" in x or "tool_calls" in x)


def _is_pair(x: Any) -> bool:
    return isinstance(x, dict) and isinstance(x.get("request"), dict) and "messages" in x["request"]


def detect(doc: Any) -> bool:
    if isinstance(doc, dict):
        msgs = doc.get("messages")
        return (isinstance(msgs, list) and bool(msgs) and _is_message(msgs[0])) or _is_pair(doc)
    if isinstance(doc, list) and doc:
        # the first record decides; a later malformed one is reported at its place by parse()
        first = doc[0]
        return _is_message(first) or _is_pair(first) or (
            isinstance(first, dict) and isinstance(first.get("messages"), list) and "traj" not in first)
    return False


def parse(doc: Any) -> list[Trace]:
    if isinstance(doc, dict):
        if _is_pair(doc):
            return [_from_pairs([doc], "$")]
        return [_conversation(doc, "$", "")]
    if _is_message(doc[0]):
        msgs = [openai_message(m, f"$[{i}]") for i, m in enumerate(doc)]
        return [build_from_messages(Trace("", NAME, "chat"), msgs)]
    if _is_pair(doc[0]):
        return [_from_pairs(doc, "")]
    # one conversation per element (the JSONL shape of fine-tuning and eval logs)
    return [_conversation(c, f"$[{i}]", f"[{i}]") for i, c in enumerate(doc)]


def _conversation(c: Any, where: str, key: str) -> Trace:
    raw = need(c, "messages", where, list)
    msgs = [openai_message(m, f"{where}.messages[{i}]") for i, m in enumerate(raw)]
    usage = None
    if isinstance(c.get("choices"), list) and c["choices"]:  # a request with its response attached
        msgs.append(openai_message(need(c["choices"][0], "message", f"{where}.choices[0]", dict), f"{where}.choices[0].message"))
        usage = _usage(c.get("usage"), len(msgs) - 1)
    t = Trace("", NAME, c.get("name") or "chat", source_key=key)
    return build_from_messages(t, msgs, model=c.get("model"), usage=usage)


def _usage(u: Any, index: int) -> dict[int, tuple[int | None, int | None]] | None:
    if not isinstance(u, dict):
        return None
    return {index: (u.get("prompt_tokens"), u.get("completion_tokens"))}


def _from_pairs(pairs: list, where0: str) -> Trace:
    """A log of calls from one agent run: each request holds the conversation so far, so the
    last request plus its response is the whole conversation; earlier calls point into it."""
    convo: list[Message] = []
    calls: list[tuple[int, list[Message], Message, Any, str | None]] = []
    for i, p in enumerate(pairs):
        w = f"{where0}[{i}]" if where0 == "" else where0
        if not _is_pair(p):
            raise TraceFormatError(w, "expected a {\"request\": {\"messages\": ...}, \"response\": ...} record")
        req = p["request"]
        raw = need(req, "messages", f"{w}.request", list)
        msgs = [openai_message(m, f"{w}.request.messages[{j}]") for j, m in enumerate(raw)]
        resp = need(p, "response", w, dict)
        choices = need(resp, "choices", f"{w}.response", list)
        if not choices:
            raise TraceFormatError(f"{w}.response.choices", "empty")
        out = openai_message(need(choices[0], "message", f"{w}.response.choices[0]", dict), f"{w}.response.choices[0].message")
        calls.append((len(msgs), msgs, out, resp.get("usage"), resp.get("model") or req.get("model")))
        if len(msgs) + 1 > len(convo):
            convo = msgs + [out]
    # rebuild the conversation once, then attach each call's own usage and model
    trace = build_from_messages(Trace("", NAME, "chat"), convo, model=calls[-1][4] if calls else None)
    llm_spans = {s.input_upto: s for s in trace.spans if s.kind == "llm"}
    for n, msgs, out, usage, model in calls:
        span = llm_spans.get(n)
        if span is None or not _same_prefix(msgs, convo):
            continue  # a call that branched off the final conversation keeps no usage here
        if isinstance(usage, dict):
            if usage.get("prompt_tokens") is not None:
                span.attributes[INPUT_TOKENS] = usage["prompt_tokens"]
            if usage.get("completion_tokens") is not None:
                span.attributes[OUTPUT_TOKENS] = usage["completion_tokens"]
    return trace


def _same_prefix(msgs: list[Message], convo: list[Message]) -> bool:
    return len(msgs) <= len(convo) and all(a.role == b.role and a.content == b.content for a, b in zip(msgs, convo))
