"""A backend that streams from any OpenAI-compatible server (vLLM, SGLang, llama.cpp server,
`workbench serve`) over one pooled httpx client: one stream per request in its own thread, chunk
times taken on receipt, output tokens counted from the server's usage, not from chunks."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from engine.backends.base import Backend, SeqOutput
from engine.model_source import ModelSpec
from engine.types import EngineError, Prompt, Request

ENDPOINTS = {"chat": "/chat/completions", "completions": "/completions"}
RETRY_STATUSES = (429, 503)


@dataclass(slots=True)
class Chunk:
    """One streamed piece of output: its receipt time, its text and, when the server says so
    (vLLM's `return_token_ids`), how many tokens it holds."""

    t_ns: int
    text: str
    tokens: int | None = None


@dataclass(slots=True)
class StreamReply:
    chunks: list[Chunk] = field(default_factory=list)
    finish_reason: str | None = None
    completion_tokens: int | None = None  # from the usage chunk
    prompt_tokens: int | None = None


class _Stream:
    """One in-flight HTTP request; the reader thread owns `response` until `cancel()` closes it."""

    __slots__ = ("request", "response", "cancelled", "thread")

    def __init__(self, request: Request):
        self.request = request
        self.response: httpx.Response | None = None
        self.cancelled = False
        self.thread: threading.Thread | None = None

    def cancel(self) -> None:
        self.cancelled = True
        resp = self.response
        if resp is None:
            return
        sock = _socket_of(resp)
        if sock is not None:
            try:  # unblocks the reader's recv at once; close() from another thread may not
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class OpenAIBackend(Backend):
    """`OpenAIBackend(spec, base_url="http://127.0.0.1:8000/v1", api_key=None, endpoint="chat")`.

    Two ways to hand tokens to the engine. `live=True` (a chat client): each chunk as it arrives,
    one token per chunk unless it names its tokens, topped up from the usage count at the end.
    `live=False` (benchmarks, the default): each reply once its stream has ended, with the
    server's completion_tokens spread over the chunks (by `token_ids` where the server sends them,
    else by text length, else tokenized with `tokenizer`), each token of a several-token chunk
    stamped at an even share of the gap since the previous chunk, so ITL is per token."""

    name = "openai"
    context_window = 0  # the server checks prompt length; 0 turns the engine's check off

    def __init__(
        self,
        spec: ModelSpec | None,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        *,
        endpoint: str = "chat",
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        retries: int = 4,
        backoff_s: float = 0.5,
        poll_s: float = 0.0005,
        live: bool = False,
        tokenizer: Callable[[str], int] | None = None,
        extra_body: dict[str, Any] | None = None,
        verify: bool | str = True,
        **_ignored: Any,
    ):
        if endpoint not in ENDPOINTS:
            raise EngineError(f"unknown endpoint {endpoint!r}: choose chat or completions")
        url = urllib.parse.urlsplit(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise EngineError(f"bad base URL {base_url!r}: expected http://host:port/v1")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.endpoint = endpoint
        self.retries = retries
        self.backoff_s = backoff_s
        self.poll_s = poll_s
        self.live = live
        self.count_text = tokenizer
        self.extra_body = dict(extra_body or {})
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # one pool for every stream: keep-alive connections are reused request after request.
        # TCP_NODELAY: httpcore writes a request's headers and body apart, and Nagle's algorithm would
        # hold the body until the server's delayed ACK (up to 40 ms added to TTFT)
        transport = httpx.HTTPTransport(
            verify=verify, limits=httpx.Limits(max_connections=None, max_keepalive_connections=256),
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        self._client = httpx.Client(base_url=self.base_url, headers=headers, transport=transport,
                                    timeout=httpx.Timeout(timeout, connect=connect_timeout))
        self._cond = threading.Condition()
        self._outputs: deque[SeqOutput] = deque()
        self._streams: dict[str, _Stream] = {}
        try:
            self.model_name = spec.path if spec is not None else self._first_model()
        except BaseException:
            self._client.close()
            raise

    # ---- HTTP plumbing ----
    def _first_model(self) -> str:
        """Like `vllm bench serve`: without --model, use the first model the server lists."""
        try:
            resp = self._send(lambda: self._client.get("/models", timeout=30.0))
        except httpx.HTTPError as e:
            raise EngineError(_one_line(e, self.base_url)) from None
        if resp.status_code != 200:
            raise EngineError(_status_error(resp.status_code, resp.content, self.base_url + "/models"))
        try:
            data = resp.json().get("data") or []
        except (ValueError, AttributeError):
            raise EngineError(f"{self.base_url}/models did not answer JSON") from None
        if not data or not isinstance(data[0], dict) or "id" not in data[0]:
            raise EngineError(f"{self.base_url}/models lists no model; pass --model")
        return str(data[0]["id"])

    def _send(self, call: Callable[[], httpx.Response], st: _Stream | None = None) -> httpx.Response:
        """`call` until the answer is not 429/503, waiting as Retry-After says (else exponential
        backoff), at most `retries` times; the last answer is returned whatever it is."""
        for attempt in range(self.retries + 1):
            resp = call()
            if resp.status_code not in RETRY_STATUSES or attempt == self.retries or (st is not None and st.cancelled):
                return resp
            wait = _retry_after(resp.headers.get("retry-after"), self.backoff_s * 2**attempt)
            resp.read()
            resp.close()
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _body(self, request: Request) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": p.max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if p.top_k:
            body["top_k"] = p.top_k
        if p.seed is not None:
            body["seed"] = p.seed
        if p.stop:
            body["stop"] = list(p.stop)
        if p.ignore_eos:
            # vLLM, SGLang and llama.cpp's server read ignore_eos; llama-cpp-python's server knows
            # only min_tokens (vLLM reads both): without it a fixed-length benchmark's replies end
            # at the first EOS there
            body["ignore_eos"] = True
            body["min_tokens"] = p.max_tokens
        prompt = request.prompt
        if self.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        else:
            body["prompt"] = prompt if isinstance(prompt, str) else "\n".join(
                str(m.get("content", "")) for m in prompt)
        body.update(self.extra_body)
        return body

    # ---- reader thread ----
    def _read(self, st: _Stream) -> None:
        rid = st.request.request_id
        try:
            reply = self._stream_reply(st)
            if st.cancelled:
                return
            if reply.prompt_tokens is not None:
                st.request.metrics.prompt_tokens = reply.prompt_tokens
            if not self.live:
                for out in replay(rid, reply, st.request.metrics.arrival_ns, self.count_text):
                    self._push(out)
            self._push(SeqOutput(rid, [], time.perf_counter_ns(), finish_reason=reply.finish_reason or "stop"))
        except Exception as e:
            if not st.cancelled:
                self._push(SeqOutput(rid, [], time.perf_counter_ns(), error=_one_line(e, self.base_url)))
        finally:
            if st.response is not None:
                st.response.close()

    def _stream_reply(self, st: _Stream) -> StreamReply:
        payload = json.dumps(self._body(st.request)).encode()
        headers = {"Content-Type": "application/json"}
        # The request arrives when it is sent, as `vllm bench serve` starts its timer: the client's
        # own hand-off (engine inbox, thread start) is not the server's latency.
        st.request.metrics.arrival_ns = time.perf_counter_ns()

        def call() -> httpx.Response:
            req = self._client.build_request("POST", ENDPOINTS[self.endpoint].lstrip("/"), content=payload,
                                             headers=headers)
            st.response = self._client.send(req, stream=True)
            return st.response

        resp = self._send(call, st)
        if resp.status_code != 200:
            raise EngineError(_status_error(resp.status_code, resp.read(), self.base_url))
        reply = StreamReply()
        live = _LivePush(self, st) if self.live else None
        for line in resp.iter_lines():
            t_ns = time.perf_counter_ns()
            if st.cancelled:
                break
            if not line.startswith("data:"):
                continue  # SSE comments (": ping"), event names, blank separators
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise EngineError(f"server error: {_error_text(data.encode())}")
            if chunk.get("id") and "remote_id" not in st.request.tags:
                st.request.tags["remote_id"] = chunk["id"]
            usage = chunk.get("usage")
            if usage:
                if usage.get("prompt_tokens") is not None:
                    reply.prompt_tokens = int(usage["prompt_tokens"])
                if usage.get("completion_tokens") is not None:
                    reply.completion_tokens = int(usage["completion_tokens"])
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue  # one request, one choice: n > 1 is not asked for
                reply.finish_reason = choice.get("finish_reason") or reply.finish_reason
                text = _chunk_text(choice)
                if text:  # a role-only, finish-only or empty chunk holds no token
                    ids = choice.get("token_ids")
                    c = Chunk(t_ns, text, len(ids) if isinstance(ids, list) and ids else None)
                    reply.chunks.append(c)
                    if live is not None:
                        live.chunk(c)
        if live is not None and not st.cancelled:
            live.finish(reply)
        return reply

    def _push(self, out: SeqOutput) -> None:
        with self._cond:
            self._outputs.append(out)
            self._cond.notify()

    # ---- Backend interface (engine thread) ----
    def render_prompt(self, prompt: Prompt, tools: list[dict] | None = None) -> list[int]:
        return []  # the server applies its own chat template

    def decode(self, token_ids: list[int]) -> str:
        return ""  # text arrives with every chunk

    def count_tokens(self, text: str) -> int:
        if self.count_text is not None:
            return self.count_text(text)
        raise EngineError("the openai backend cannot count tokens locally; the server reports usage")

    def add_request(self, request: Request) -> None:
        st = _Stream(request)
        self._streams[request.request_id] = st
        st.thread = threading.Thread(target=self._read, args=(st,), name=f"openai-{request.request_id}", daemon=True)
        st.thread.start()

    def free_request(self, request_id: str) -> None:
        st = self._streams.pop(request_id, None)
        if st is not None:
            st.cancel()

    def has_unfinished(self) -> bool:
        return bool(self._streams) or bool(self._outputs)

    def step(self) -> tuple[list[SeqOutput], None]:
        with self._cond:
            if not self._outputs:
                # a short wait: new requests reach add_request only between steps
                self._cond.wait(self.poll_s)
            outs = list(self._outputs)
            self._outputs.clear()
        return outs, None

    def stats(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "open_streams": len(self._streams)}

    def close(self) -> None:
        for rid in list(self._streams):
            self.free_request(rid)
        self._client.close()


class _LivePush:
    """live=True: a chunk goes to the engine as it arrives. The chunk that would reach max_tokens
    is held until the stream ends: the engine would end the request on it and close the stream
    before the usage chunk and [DONE] arrive."""

    def __init__(self, backend: OpenAIBackend, st: _Stream):
        self.backend = backend
        self.rid = st.request.request_id
        self.limit = st.request.params.max_tokens
        self.pushed = 0
        self.held: list[SeqOutput] = []

    def chunk(self, c: Chunk) -> None:
        k = c.tokens or 1
        out = SeqOutput(self.rid, [-1] * k, c.t_ns, texts=[c.text] + [""] * (k - 1))
        if self.held or self.pushed + k >= self.limit:
            self.held.append(out)
        else:
            self.pushed += k
            self.backend._push(out)

    def finish(self, reply: StreamReply) -> None:
        for out in self.held:
            self.pushed += len(out.token_ids)
            self.backend._push(out)
        missing = (reply.completion_tokens or 0) - self.pushed
        if missing > 0 and reply.chunks:  # chunks held more tokens than they said
            self.backend._push(SeqOutput(self.rid, [-1] * missing, reply.chunks[-1].t_ns, texts=[""] * missing))


def split_tokens(total: int, chunks: list[Chunk], count_text: Callable[[str], int] | None = None) -> list[int]:
    """How many of `total` output tokens each chunk held. Chunks that name their tokens keep that
    count; the rest share what is left in proportion to their tokenized length (or text length),
    at least one each while tokens last, the rounding by largest remainder."""
    known = [c.tokens for c in chunks]
    if all(k is not None for k in known):
        return [int(k) for k in known]
    free = [i for i, k in enumerate(known) if k is None]
    left = max(0, total - sum(k for k in known if k is not None))
    counts = [k or 0 for k in known]
    if left <= len(free):
        for i in free[:left]:
            counts[i] = 1
        return counts
    weights = [max(1, count_text(chunks[i].text) if count_text else len(chunks[i].text)) for i in free]
    shares = [left * w / sum(weights) for w in weights]
    got = [max(1, int(x)) for x in shares]
    while sum(got) < left:  # the largest remainders get the rounding
        j = max(range(len(got)), key=lambda j: shares[j] - got[j])
        got[j] += 1
    while sum(got) > left:  # a minimum of one took too much: back from the most over their share
        j = max((j for j in range(len(got)) if got[j] > 1), key=lambda j: got[j] - shares[j])
        got[j] -= 1
    for j, i in enumerate(free):
        counts[i] = got[j]
    return counts


def replay(rid: str, reply: StreamReply, sent_ns: int, count_text: Callable[[str], int] | None = None) -> list[SeqOutput]:
    """One SeqOutput per output token. A chunk of k tokens received g after the previous chunk
    stamps them at g/k steps, so the gaps between tokens are per token; the first chunk's tokens
    all arrive with it (that moment is the TTFT)."""
    chunks = reply.chunks
    if not chunks:
        return []
    total = reply.completion_tokens
    if total is None:  # no usage chunk: tokenize the text, else a chunk is the best count there is
        total = sum(max(1, count_text(c.text)) for c in chunks) if count_text else len(chunks)
    counts = split_tokens(total, chunks, count_text)
    outs: list[SeqOutput] = []
    prev = None
    pending = ""  # text of a chunk given no token of its own rides with the next token
    for c, k in zip(chunks, counts):
        if k == 0:
            pending += c.text
            continue
        for j in range(k):
            t = c.t_ns if prev is None else prev + (c.t_ns - prev) * (j + 1) // k
            text = pending + c.text if j == 0 else ""
            outs.append(SeqOutput(rid, [-1], t, texts=[text]))
        pending = ""
        prev = c.t_ns
    if pending and outs:
        outs[-1].texts[0] += pending
    return outs


def _chunk_text(choice: dict[str, Any]) -> str | None:
    """The text of one streamed choice, or None when the chunk carries no output."""
    if "delta" in choice:
        delta = choice["delta"] or {}
        text = delta.get("content")
        if not text:
            text = delta.get("reasoning_content") or delta.get("reasoning")
        if not text and delta.get("tool_calls"):
            text = json.dumps(delta["tool_calls"])
        return text or None
    return choice.get("text") or None


def _socket_of(resp: httpx.Response) -> socket.socket | None:
    stream = resp.extensions.get("network_stream")
    try:
        return stream.get_extra_info("socket") if stream is not None else None
    except Exception:
        return None


def _retry_after(value: str | None, default: float) -> float:
    try:
        return min(max(float(value), 0.0), 60.0) if value is not None else default
    except ValueError:
        return default


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err)
    except (ValueError, AttributeError):
        text = body.decode("utf-8", "replace").strip()
        return text.splitlines()[0][:200] if text else "(empty body)"


def _status_error(status: int, body: bytes, where: str) -> str:
    if status in (401, 403):
        return f"{where} refused the API key ({status}): {_error_text(body)}; check --api-key-env"
    return f"server answered {status}: {_error_text(body)}"


def _one_line(e: Exception, base_url: str) -> str:
    if isinstance(e, EngineError):
        return str(e)
    cause = e
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
        if isinstance(cause, ssl.SSLError):
            reason = getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or cause
            return f"TLS handshake with {base_url} failed: {reason}"
    if isinstance(e, httpx.ConnectTimeout):
        return f"cannot reach {base_url}: timed out connecting"
    if isinstance(e, httpx.ConnectError):
        text = str(e)
        if "refused" in text.lower() or "Errno 111" in text:
            return f"cannot reach {base_url}: connection refused (is the server running?)"
        return f"cannot reach {base_url}: {text or type(e).__name__}"
    if isinstance(e, httpx.ReadTimeout):
        return f"{base_url} sent nothing for too long (read timeout)"
    if isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError)):
        return f"{base_url} closed the stream early: {e or type(e).__name__}"
    if isinstance(e, (httpx.HTTPError, OSError)):
        return f"cannot reach {base_url}: {e or type(e).__name__}"
    return f"{type(e).__name__}: {e}"
