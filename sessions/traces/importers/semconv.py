"""What a span's attributes say about it under every naming scheme in use: the OTel GenAI conventions
(old and new), OpenInference, OpenLLMetry, OpenLIT and the Vercel AI SDK -> kind, model, tokens, messages, tool call."""
from __future__ import annotations

import json
import re
from typing import Any

from engine.types import flatten_content
from sessions.traces.importers.common import call_id, maybe_json, parse_arguments
from sessions.traces.importers.spans import chat_messages, output_messages
from sessions.traces.model import (
    INPUT_TOKENS,
    OPERATION,
    OUTPUT_TOKENS,
    REQUEST_MODEL,
    TOOL_CALL_ID,
    TOOL_NAME,
    Message,
    Span,
    ToolCall,
)

# gen_ai.operation.name values (current and older drafts)
_OPERATION_KIND = {"chat": "llm", "text_completion": "llm", "generate_content": "llm", "completion": "llm",
                   "responses": "llm", "execute_tool": "tool", "invoke_agent": "agent", "create_agent": "agent",
                   "invoke_workflow": "agent", "retrieval": "retrieval", "retrieve": "retrieval", "embeddings": "other"}
_OPENINFERENCE_KIND = {"LLM": "llm", "TOOL": "tool", "AGENT": "agent", "RETRIEVER": "retrieval", "CHAIN": "other",
                       "EMBEDDING": "other", "RERANKER": "other", "GUARDRAIL": "other", "EVALUATOR": "other"}
_TRACELOOP_KIND = {"workflow": "agent", "agent": "agent", "tool": "tool", "task": "other"}
# OpenLLMetry's llm.request.type, the Vercel AI SDK's operation ids
_LLM_REQUEST_TYPES = {"chat", "completion", "chat.completion", "acompletion", "responses"}
_VERCEL_LLM = ("ai.generateText", "ai.streamText", "ai.generateObject", "ai.streamObject")

INPUT_TOKEN_KEYS = (INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt", "llm.usage.prompt_tokens",
                    "ai.usage.promptTokens", "ai.usage.inputTokens")
OUTPUT_TOKEN_KEYS = (OUTPUT_TOKENS, "gen_ai.usage.completion_tokens", "llm.token_count.completion",
                     "llm.usage.completion_tokens", "ai.usage.completionTokens", "ai.usage.outputTokens")
MODEL_KEYS = (REQUEST_MODEL, "gen_ai.response.model", "llm.model_name", "llm.model", "ai.model.id")
TOOL_NAME_KEYS = (TOOL_NAME, "tool.name", "ai.toolCall.name")
TOOL_ARG_KEYS = ("gen_ai.tool.call.arguments", "tool.parameters", "gcp.vertex.agent.tool_call_args", "tool_arguments",
                 "ai.toolCall.args", "traceloop.entity.input", "input.value")
TOOL_RESULT_KEYS = ("gen_ai.tool.call.result", "gcp.vertex.agent.tool_response", "tool_response", "ai.toolCall.result",
                    "traceloop.entity.output", "output.value")
TOOL_ID_KEYS = (TOOL_CALL_ID, "ai.toolCall.id")
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
# which scheme named an LLM span's tokens: spans of one invocation instrumented twice carry both
TOKEN_SOURCE = "workbench.token_source"

_INDEXED = re.compile(r"^(gen_ai\.prompt|gen_ai\.completion|llm\.input_messages|llm\.output_messages)\.(\d+)\.(.+)$")


def kind_of(attrs: dict[str, Any], name: str, declared: str | None = None) -> str:
    """The span's kind: an explicit kind attribute first, then the format's declared type, then
    weaker hints (a tool name, a model with token counts). `declared` None means the format
    declares nothing (OTLP, Jaeger), "other" that it declared something generic (Langfuse SPAN)."""
    op = attrs.get(OPERATION)
    if op in _OPERATION_KIND:
        return _OPERATION_KIND[op]
    oi = attrs.get("openinference.span.kind")
    if oi in _OPENINFERENCE_KIND:
        return _OPENINFERENCE_KIND[oi]
    tl = attrs.get("traceloop.span.kind")
    if tl in _TRACELOOP_KIND:
        return _TRACELOOP_KIND[tl]
    if attrs.get("llm.request.type") in _LLM_REQUEST_TYPES:
        return "llm"
    vop = attrs.get("ai.operationId")
    if type(vop) is str:
        if vop == "ai.toolCall":
            return "tool"
        if vop.startswith(_VERCEL_LLM):
            return "llm"
    if declared is not None and declared != "other":
        return declared
    if any(k in attrs for k in TOOL_NAME_KEYS):
        return "tool"
    if (any(k in attrs for k in MODEL_KEYS) and any(k in attrs for k in INPUT_TOKEN_KEYS)
            and not any(k.startswith("gen_ai.agent") for k in attrs)):
        return "llm"
    return declared or "other"


def _int(v: Any) -> int | None:
    if type(v) is int:
        return v
    try:
        return int(v) if v is not None and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        try:
            return int(float(v))
        except (TypeError, ValueError):
            return None


def first(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return v
    return None


def indexed(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """`prefix.0.role`, `prefix.0.content`, `prefix.1.tool_calls.0.name` ... -> one dict per index,
    sub-keys kept flat ("role", "content", "tool_calls.0.name")."""
    out: dict[int, dict[str, Any]] = {}
    for k, v in attrs.items():
        if not k.startswith(prefix):
            continue
        m = _INDEXED.match(k)
        if m and m.group(1) == prefix:
            out.setdefault(int(m.group(2)), {})[m.group(3)] = v
    return [out[i] for i in sorted(out)]


def _flat_message(d: dict[str, Any], default_role: str) -> Message:
    """One indexed message of OpenLLMetry (`role`, `content`, `tool_calls.N.name`) or OpenInference
    (`message.role`, `message.content`, `message.contents.N.message_content.text`,
    `message.tool_calls.N.tool_call.function.name`)."""
    d = {k.removeprefix("message."): v for k, v in d.items()}
    role = str(d.get("role") or default_role)
    texts = [d["content"]] if isinstance(d.get("content"), str) else []
    calls: dict[str, dict[str, Any]] = {}
    for k, v in d.items():
        if k.startswith("contents.") and k.endswith(".text"):
            texts.append(str(v))
        elif k.startswith("tool_calls."):
            n, _, rest = k[len("tool_calls."):].partition(".")
            calls.setdefault(n, {})[rest.removeprefix("tool_call.").removeprefix("function.")] = v
    if not texts and d.get("content") is not None:
        texts.append(flatten_content(maybe_json(d["content"])))
    tool_calls = [ToolCall(call_id(c.get("id")), str(c.get("name") or "tool"), parse_arguments(c.get("arguments")))
                  for _, c in sorted(calls.items(), key=lambda p: int(p[0]) if p[0].isdigit() else 0)]
    if role in ("human",):
        role = "user"
    elif role in ("ai", "model"):
        role = "assistant"
    return Message(role, "\n".join(texts), tool_calls, call_id(d.get("tool_call_id")), d.get("name"))


def input_messages(attrs: dict[str, Any]) -> list[Message] | None:
    """What an LLM span's model was sent, from whichever scheme the span uses; None when none."""
    msgs = None
    raw = attrs.get("gen_ai.input.messages")
    if raw is not None:
        msgs = chat_messages(maybe_json(raw), ".attributes[gen_ai.input.messages]")
    elif any(k.startswith("gen_ai.prompt.") for k in attrs):
        msgs = [_flat_message(d, "user") for d in indexed(attrs, "gen_ai.prompt")]
    elif any(k.startswith("llm.input_messages.") for k in attrs):
        msgs = [_flat_message(d, "user") for d in indexed(attrs, "llm.input_messages")]
    else:
        for key in ("gen_ai.prompt", "gen_ai.content.prompt", "ai.prompt.messages", "llm.prompts", "input.value", "ai.prompt"):
            if attrs.get(key) is not None:
                msgs = chat_messages(maybe_json(attrs[key]), f".attributes[{key}]")
                break
    system = attrs.get("gen_ai.system_instructions") or attrs.get("gen_ai.system.instructions")
    if system is not None:
        text = flatten_content(maybe_json(system))
        msgs = [Message("system", text)] + [m for m in (msgs or []) if m.role != "system" or m.content != text]
    return msgs


def output_of(attrs: dict[str, Any]) -> list[Message]:
    raw = attrs.get("gen_ai.output.messages")
    if raw is not None:
        return output_messages(maybe_json(raw), ".attributes[gen_ai.output.messages]")
    if any(k.startswith("gen_ai.completion.") for k in attrs):
        return [_as_assistant(_flat_message(d, "assistant")) for d in indexed(attrs, "gen_ai.completion")]
    if any(k.startswith("llm.output_messages.") for k in attrs):
        return [_as_assistant(_flat_message(d, "assistant")) for d in indexed(attrs, "llm.output_messages")]
    for key in ("gen_ai.completion", "gen_ai.content.completion", "ai.response.text", "output.value"):
        if attrs.get(key) is not None:
            return output_messages(maybe_json(attrs[key]), f".attributes[{key}]")
    return []


# span events of the older GenAI conventions (and OpenLIT) that carry the prompt and the completion
_EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user", "gen_ai.assistant.message": "assistant",
                "gen_ai.tool.message": "tool"}


def event_messages(events: list[tuple[str, dict[str, Any]]]) -> tuple[list[Message] | None, list[Message]]:
    """(input, output) from span events: gen_ai.content.prompt / gen_ai.content.completion (an
    attribute holding the text or its JSON), gen_ai.{system,user,assistant,tool}.message and
    gen_ai.choice (a `content` and `tool_calls`, or a `message`)."""
    inp: list[Message] = []
    out: list[Message] = []
    for name, a in events:
        if name == "gen_ai.content.prompt" and a.get("gen_ai.prompt") is not None:
            inp += chat_messages(maybe_json(a["gen_ai.prompt"]), ".events[gen_ai.content.prompt]") or []
        elif name == "gen_ai.content.completion" and a.get("gen_ai.completion") is not None:
            out += output_messages(maybe_json(a["gen_ai.completion"]), ".events[gen_ai.content.completion]")
        elif name in _EVENT_ROLES:
            inp.append(_event_message(_EVENT_ROLES[name], a))
        elif name == "gen_ai.choice":
            msg = maybe_json(a.get("message")) if a.get("message") is not None else a
            out.append(_as_assistant(_event_message("assistant", msg if isinstance(msg, dict) else {"content": msg})))
    return (inp or None), out


def _event_message(role: str, a: dict[str, Any]) -> Message:
    calls = []
    raw = maybe_json(a.get("tool_calls")) if a.get("tool_calls") is not None else None
    for tc in raw if isinstance(raw, list) else []:
        fn = tc.get("function") if isinstance(tc, dict) and isinstance(tc.get("function"), dict) else tc
        if isinstance(fn, dict) and fn.get("name"):
            calls.append(ToolCall(call_id(tc.get("id")), str(fn["name"]), parse_arguments(fn.get("arguments"))))
    return Message(str(a.get("role") or role), flatten_content(maybe_json(a.get("content"))), calls, call_id(a.get("id")) if role == "tool" else None)


def _as_assistant(m: Message) -> Message:
    m.role = "assistant"
    return m


def tool_definitions(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    raw = attrs.get(TOOL_DEFINITIONS)
    if raw is None:
        raw = attrs.get("ai.prompt.tools")
    if raw is not None:
        v = maybe_json(raw)
        if isinstance(v, list):
            return [maybe_json(t) if isinstance(t, str) else t for t in v]
    defs = [d.get("tool.json_schema") for d in _indexed_prefix(attrs, "llm.tools.")]
    if defs:
        return [maybe_json(d) for d in defs if d is not None]
    fns = _indexed_prefix(attrs, "gen_ai.request.functions.")  # OpenLLMetry
    if fns:
        return [{"type": "function", "function": {"name": f.get("name"), "description": f.get("description"),
                                                  "parameters": maybe_json(f.get("parameters"))}} for f in fns]
    return None


def _indexed_prefix(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for k, v in attrs.items():
        if k.startswith(prefix):
            n, _, rest = k[len(prefix):].partition(".")
            if n.isdigit():
                out.setdefault(int(n), {})[rest] = v
    return [out[i] for i in sorted(out)]


def fill_llm(s: Span) -> None:
    """Model, tokens, input and output of an llm span, in the GenAI names the store reads."""
    a = s.attributes
    if REQUEST_MODEL not in a:
        model = first(a, MODEL_KEYS)
        if model is not None:
            a[REQUEST_MODEL] = model
    if INPUT_TOKENS not in a or OUTPUT_TOKENS not in a:
        for source, (ik, ok) in enumerate(zip(INPUT_TOKEN_KEYS, OUTPUT_TOKEN_KEYS)):
            i, o = _int(a.get(ik)), _int(a.get(ok))
            if i is not None or o is not None:
                if i is not None:
                    a.setdefault(INPUT_TOKENS, i)
                if o is not None:
                    a.setdefault(OUTPUT_TOKENS, o)
                break
    for k in (INPUT_TOKENS, OUTPUT_TOKENS):
        if k in a and type(a[k]) is not int:
            v = _int(a[k])
            if v is None:
                del a[k]
            else:
                a[k] = v
    if s.input_messages is None:
        s.input_messages = input_messages(a)
    if not s.output_messages:
        s.output_messages = output_of(a)
    defs = tool_definitions(a)
    if defs and TOOL_DEFINITIONS not in a:
        a[TOOL_DEFINITIONS] = defs
    # the messages now live in their own columns; a second copy in the attributes only costs
    for k in [k for k in a if k.startswith(_MESSAGE_PREFIXES)]:
        del a[k]


_MESSAGE_PREFIXES = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.prompt.", "gen_ai.completion.",
                     "llm.input_messages.", "llm.output_messages.")


def tool_call(s: Span, fallback_name: str | None = None) -> ToolCall:
    a = s.attributes
    name = first(a, TOOL_NAME_KEYS) or fallback_name or s.name.removeprefix("execute_tool ").removeprefix("running tool: ").strip()
    name = str(name)
    a.setdefault(TOOL_NAME, name)
    args = first(a, TOOL_ARG_KEYS)
    result = first(a, TOOL_RESULT_KEYS)
    cid = call_id(first(a, TOOL_ID_KEYS))
    if cid is not None:
        a[TOOL_CALL_ID] = cid
    a.pop("gen_ai.tool.call.arguments", None)
    a.pop("gen_ai.tool.call.result", None)
    return ToolCall(cid, name, parse_arguments(args), result if result is None or isinstance(result, str)
                    else json.dumps(result, ensure_ascii=False))
