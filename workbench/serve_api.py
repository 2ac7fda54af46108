"""The OpenAI wire format `workbench serve` speaks: pydantic request models, OpenAI error bodies,
tool definitions folded into a prompt where the chat template has no place for them, tool calls
parsed back out of the reply, and JSON-object replies cut at the object's end. No I/O here."""
from __future__ import annotations

import json
import re
import uuid
from typing import Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from engine import EngineError, SamplingParams
from engine.types import MAX_LOGPROBS, TokenLogprob, flatten_content

MAX_N = 16


class ApiError(Exception):
    """Becomes an OpenAI error body: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | int | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.type = type_
        self.param = param
        self.code = status if code is None else code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}


# ---- request models (unknown fields are ignored, as vLLM does) ----

class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Model):
    type: Literal["text"]
    text: str


class FunctionCall(_Model):
    name: str
    arguments: Union[str, dict[str, Any]] = "{}"


class ToolCall(_Model):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Model):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[TextPart], None] = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDef(_Model):
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Model):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(_Model):
    name: str


class NamedToolChoice(_Model):
    type: Literal["function"] = "function"
    function: NamedFunction


class StreamOptions(_Model):
    include_usage: StrictBool = False


class ResponseFormat(_Model):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class _Sampling(_Model):
    model: str | None = None
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = None
    n: int = Field(1, ge=1, le=MAX_N)
    seed: int | None = None
    stop: Union[str, list[str], None] = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    ignore_eos: StrictBool = False
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    return_token_ids: StrictBool = False  # vLLM's: each chunk names its token ids
    user: str | None = None


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[Tool] | None = None
    tool_choice: Union[Literal["none", "auto", "required"], NamedToolChoice, None] = None
    response_format: ResponseFormat | None = None
    logprobs: StrictBool | None = None
    top_logprobs: int | None = None


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str], list[int], list[list[int]]]
    max_tokens: int | None = Field(None, ge=1)
    echo: StrictBool = False
    suffix: str | None = None
    logprobs: int | None = None


class EmbeddingRequest(_Model):
    model: str | None = None
    input: Union[str, list[str], list[int], list[list[int]]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


def parse(model: type[BaseModel], body: Any) -> Any:
    """A request model from a JSON body, or a 400 naming the first bad field."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(x) for x in err["loc"] if not str(x).startswith(("function-", "union", "literal"))]
        where = ".".join(loc) or "body"
        raise ApiError(400, f"{where}: {err['msg']}", param=loc[0] if loc else None) from None


# ---- from a request to what the engine takes ----

def chat_logprobs(req: ChatRequest) -> int | None:
    """How many alternatives a chat request wants per token (None: no logprobs), as OpenAI
    reads `logprobs` and `top_logprobs`."""
    if req.top_logprobs is not None:
        if not req.logprobs:
            raise ApiError(400, "'top_logprobs' needs 'logprobs': true", param="top_logprobs")
        if not 0 <= req.top_logprobs <= MAX_LOGPROBS:
            raise ApiError(400, f"'top_logprobs' must be in 0..{MAX_LOGPROBS}", param="top_logprobs")
        return req.top_logprobs
    return 0 if req.logprobs else None


def completion_logprobs(req: CompletionRequest) -> int | None:
    if req.logprobs is not None and not 0 <= req.logprobs <= MAX_LOGPROBS:
        raise ApiError(400, f"'logprobs' must be in 0..{MAX_LOGPROBS}", param="logprobs")
    return req.logprobs


def sampling_params(req: _Sampling, max_tokens: int, backend: str, logprobs: int | None = None,
                    logprobs_supported: bool = False) -> list[SamplingParams]:
    """One SamplingParams per choice; with a seed, choice i gets seed + i (the same seed n times
    would give n copies of one sample)."""
    if logprobs is not None and not logprobs_supported:
        raise ApiError(400, f"logprobs are not available from the {backend} backend", param="logprobs")
    for key in ("presence_penalty", "frequency_penalty"):
        if getattr(req, key):
            raise ApiError(400, f"'{key}' is not supported (only 0)", param=key)
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if not all(stop):
        raise ApiError(400, "'stop' must be a string or a list of non-empty strings", param="stop")
    try:
        return [SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if req.temperature is None else req.temperature,
            top_p=1.0 if req.top_p is None else req.top_p,
            top_k=max(0, req.top_k or 0),  # vLLM uses -1 for "off"
            seed=None if req.seed is None else req.seed + i,
            stop=stop,
            ignore_eos=req.ignore_eos,
            logprobs=logprobs,
        ) for i in range(req.n)]
    except EngineError as e:
        raise ApiError(400, str(e)) from None


def content_text(content: Any) -> str:
    """Text of a message's content; parts join with a newline (engine.types.flatten_content)."""
    return flatten_content([p.model_dump() for p in content] if isinstance(content, list) else content)


def plain_messages(req: ChatRequest) -> list[dict[str, Any]]:
    """The messages as the chat template takes them: text content, developer as system."""
    out = []
    for m in req.messages:
        msg: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role,
                               "content": content_text(m.content)}
        if m.tool_calls:
            msg["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.function.name, "arguments": _arguments_dict(c.function.arguments)}}
                                 for c in m.tool_calls]
        if m.tool_call_id:
            msg["tool_call_id"] = m.tool_call_id
        if m.name:
            msg["name"] = m.name
        out.append(msg)
    return out


def _arguments_dict(arguments: str | dict[str, Any]) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


# ---- tools through a template that has no place for them ----

TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"


def tool_system_prompt(tools: list[dict[str, Any]], choice: Any) -> str:
    """The Hermes convention (Qwen, SmolLM3 and most open tool-calling models use it): function
    signatures in <tools>, each call answered as JSON inside <tool_call> tags."""
    sigs = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
    text = ("You can call functions to answer. Their signatures are inside <tools></tools>:\n"
            f"<tools>\n{sigs}\n</tools>\n"
            "To call one, reply with a JSON object holding its name and arguments inside tags:\n"
            f'{TOOL_OPEN}\n{{"name": "function_name", "arguments": {{"arg": "value"}}}}\n{TOOL_CLOSE}')
    if choice == "required":
        text += "\nYou must call at least one function."
    elif isinstance(choice, dict):
        text += f"\nYou must call the function {choice['function']['name']}."
    return text


def fold_tools(messages: list[dict[str, Any]], tools: list[dict[str, Any]], choice: Any) -> list[dict[str, Any]]:
    """Messages for a template that ignores `tools`: the signatures in the system message, earlier
    tool calls written into the assistant's text the way the model is asked to write them."""
    out = []
    for m in messages:
        m = dict(m)
        calls = m.pop("tool_calls", None)
        if calls:
            blocks = [f'{TOOL_OPEN}\n{json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]}, ensure_ascii=False)}\n{TOOL_CLOSE}'
                      for c in calls]
            m["content"] = "\n".join(filter(None, [m.get("content") or "", *blocks]))
        m.pop("tool_call_id", None)
        out.append(m)
    preamble = tool_system_prompt(tools, choice)
    if out and out[0]["role"] == "system":
        out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{preamble}".strip()}
    else:
        out.insert(0, {"role": "system", "content": preamble})
    return out


def tool_prefill(choice: Any) -> str:
    """The start of the reply, given to the model, when the request says a call must come."""
    if choice == "required":
        return f"{TOOL_OPEN}\n"
    if isinstance(choice, dict):
        return f'{TOOL_OPEN}\n{{"name": {json.dumps(choice["function"]["name"])}, "arguments": '
    return ""


_TOOL_BLOCK = re.compile(re.escape(TOOL_OPEN) + r"\s*(.*?)\s*(?:" + re.escape(TOOL_CLOSE) + r"|$)", re.S)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def parse_tool_calls(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """(content, tool calls) of a reply: <tool_call> blocks (Hermes), or a reply that is one bare
    JSON object with a name and arguments (Llama 3 style). Blocks that are not JSON stay text."""
    calls = []
    content = text
    if TOOL_OPEN in text:
        kept = []
        pos = 0
        for m in _TOOL_BLOCK.finditer(text):
            call = _call_from_json(m.group(1))
            if call is None:
                continue
            kept.append(text[pos:m.start()])
            pos = m.end()
            calls.append(call)
        kept.append(text[pos:])
        content = "".join(kept)
    else:
        body = text.strip()
        fenced = _FENCE.match(body)
        call = _call_from_json(fenced.group(1) if fenced else body) if body.startswith(("{", "`")) else None
        if call is not None:
            calls.append(call)
            content = ""
    content = content.strip() if calls else content
    return (content or None) if calls else content, calls


def _call_from_json(raw: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": obj["name"], "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)}}


JSON_OBJECT_PROMPT = "Reply with one JSON object and nothing else."


def json_object_end(text: str) -> int | None:
    """Index just past the first complete top-level JSON object in `text`, or None."""
    depth = 0
    in_str = esc = False
    start = text.find("{")
    if start < 0:
        return None
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


class ReplyText:
    """One choice's text as it streams: what may go out as content now, and at the end the content
    and tool calls. `prefill` is the reply's start that was given to the model, not generated."""

    def __init__(self, prefill: str = "", tools: bool = False, json_object: bool = False):
        self.text = prefill
        self.tools = tools
        self.json_object = json_object
        self.sent = 0  # chars of self.text already released as content

    def feed(self, delta: str) -> str:
        self.text += delta
        upto = self._releasable()
        if upto <= self.sent:
            return ""
        out = self.text[self.sent:upto]
        self.sent = upto
        return out

    def _releasable(self) -> int:
        t = self.text
        if self.json_object:
            end = json_object_end(t)
            return len(t) if end is None else end
        if not self.tools:
            return len(t)
        if t.lstrip().startswith(("{", "`")) or (t.strip() == "" and t):
            return self.sent  # may be a bare JSON call: decided at the end
        i = t.find(TOOL_OPEN)
        if i >= 0:
            return i
        for k in range(min(len(TOOL_OPEN) - 1, len(t)), 0, -1):  # hold a tail that may open a tag
            if t.endswith(TOOL_OPEN[:k]):
                return len(t) - k
        return len(t)

    def finish(self) -> tuple[str | None, list[dict[str, Any]]]:
        """(whole content, tool calls)."""
        text = self.text
        if self.json_object:
            end = json_object_end(text)
            text = text if end is None else text[:end]
        if self.tools:
            return parse_tool_calls(text)
        return text, []

    def tail(self, content: str | None) -> str:
        """What of the final content has not gone out yet."""
        content = content or ""
        sent = self.text[:self.sent]
        return content[len(sent):] if content.startswith(sent) else ""


# ---- logprobs, in the two shapes the OpenAI API gives them ----

def chat_logprobs_body(lps: list[TokenLogprob], decode: Callable[[list[int]], str]) -> dict[str, Any]:
    """`choice.logprobs` of a chat completion: one entry per token, its text, bytes and alternatives."""
    def entry(tid: int, lp: float) -> dict[str, Any]:
        text = decode([tid])
        return {"token": text, "logprob": lp, "bytes": list(text.encode())}

    return {"content": [{**entry(t.token_id, t.logprob), "top_logprobs": [entry(i, v) for i, v in t.top]}
                        for t in lps]}


def completion_logprobs_body(lps: list[TokenLogprob], decode: Callable[[list[int]], str],
                             offset: int = 0) -> dict[str, Any]:
    """`choice.logprobs` of a text completion: parallel lists, the alternatives as {token: logprob},
    text_offset counted from `offset` (the characters already sent)."""
    tokens = [decode([t.token_id]) for t in lps]
    offsets = []
    for tok in tokens:
        offsets.append(offset)
        offset += len(tok)
    return {"tokens": tokens, "token_logprobs": [t.logprob for t in lps],
            "top_logprobs": [{decode([i]): v for i, v in t.top} for t in lps], "text_offset": offsets}
