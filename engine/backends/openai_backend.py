"""A backend that streams from any OpenAI-compatible server (vLLM, SGLang, llama.cpp server,
`workbench serve`): one HTTP stream per request in its own thread, chunk times taken on receipt."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from collections import deque
from typing import Any

from engine.backends.base import Backend, SeqOutput
from engine.model_source import ModelSpec
from engine.types import EngineError, Prompt, Request

ENDPOINTS = {"chat": "/chat/completions", "completions": "/completions"}


class _Stream:
    """One in-flight HTTP request; the reader thread owns `conn` until `cancel()` closes it."""

    __slots__ = ("request", "conn", "cancelled", "thread")

    def __init__(self, request: Request):
        self.request = request
        self.conn: http.client.HTTPConnection | None = None
        self.cancelled = False
        self.thread: threading.Thread | None = None

    def cancel(self) -> None:
        self.cancelled = True
        conn = self.conn
        if conn is not None and conn.sock is not None:
            try:  # unblocks the reader's recv at once; close() alone may not
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if conn is not None:
            conn.close()


class OpenAIBackend(Backend):
    """`OpenAIBackend(spec, base_url="http://127.0.0.1:8000/v1", api_key=None, endpoint="chat")`.
    Each SSE chunk that carries text counts as one output token (as `vllm bench serve` counts)."""

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
        poll_s: float = 0.0005,
        extra_body: dict[str, Any] | None = None,
        **_ignored: Any,
    ):
        if endpoint not in ENDPOINTS:
            raise EngineError(f"unknown endpoint {endpoint!r}: choose chat or completions")
        url = urllib.parse.urlsplit(base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise EngineError(f"bad base URL {base_url!r}: expected http://host:port/v1")
        self.base_url = base_url.rstrip("/")
        self._url = url
        self.api_key = api_key
        self.endpoint = endpoint
        self.timeout = timeout
        self.poll_s = poll_s
        self.extra_body = dict(extra_body or {})
        self._cond = threading.Condition()
        self._outputs: deque[SeqOutput] = deque()
        self._streams: dict[str, _Stream] = {}
        self.model_name = spec.path if spec is not None else self._first_model()

    # ---- HTTP plumbing ----
    def _connection(self) -> http.client.HTTPConnection:
        u = self._url
        cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        return cls(u.hostname, u.port, timeout=self.timeout)

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def _path(self, suffix: str) -> str:
        return (self._url.path or "") + suffix

    def _first_model(self) -> str:
        """Like `vllm bench serve`: without --model, use the first model the server lists."""
        conn = self._connection()
        conn.timeout = min(self.timeout, 30.0)
        try:
            conn.request("GET", self._path("/models"), headers=self._headers())
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise EngineError(f"{self.base_url}/models answered {resp.status}: {_error_text(body)}")
            data = json.loads(body).get("data") or []
        except (OSError, http.client.HTTPException) as e:
            raise EngineError(f"cannot reach {self.base_url}: {e}") from None
        except ValueError:
            raise EngineError(f"{self.base_url}/models did not answer JSON") from None
        finally:
            conn.close()
        if not data or not isinstance(data[0], dict) or "id" not in data[0]:
            raise EngineError(f"{self.base_url}/models lists no model; pass --model")
        return str(data[0]["id"])

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
            body["ignore_eos"] = True
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
            finish, held = self._stream_chunks(st)
            if held is not None:
                held.finish_reason = finish or "length"
                self._push(held)
            else:
                self._push(SeqOutput(rid, [], time.perf_counter_ns(), finish_reason=finish or "stop"))
        except Exception as e:
            if not st.cancelled:
                self._push(SeqOutput(rid, [], time.perf_counter_ns(), error=_one_line(e, self.base_url)))
        finally:
            if st.conn is not None:
                st.conn.close()

    def _stream_chunks(self, st: _Stream) -> tuple[str | None, SeqOutput | None]:
        """Push one output per text chunk as it arrives. The chunk that reaches max_tokens is held
        (its receipt time kept) until the stream ends: the engine would end the request on it and
        close the stream before the usage chunk and [DONE] arrive."""
        conn = self._connection()
        st.conn = conn
        if st.cancelled:
            return None, None
        payload = json.dumps(self._body(st.request)).encode()
        # The request arrives when it is sent, as `vllm bench serve` starts its timer: the client's
        # own hand-off (engine inbox, thread start) is not the server's latency.
        st.request.metrics.arrival_ns = time.perf_counter_ns()
        conn.request("POST", self._path(ENDPOINTS[self.endpoint]), body=payload, headers=self._headers())
        resp = conn.getresponse()
        if resp.status != 200:
            raise EngineError(f"server answered {resp.status}: {_error_text(resp.read())}")
        rid = st.request.request_id
        finish: str | None = None
        held: SeqOutput | None = None
        count = 0
        limit = st.request.params.max_tokens
        while True:
            line = resp.readline()
            t_ns = time.perf_counter_ns()
            if not line or st.cancelled:
                break
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise EngineError(f"server error: {_error_text(data)}")
            if chunk.get("id") and "remote_id" not in st.request.tags:
                st.request.tags["remote_id"] = chunk["id"]
            usage = chunk.get("usage")
            if usage and usage.get("prompt_tokens") is not None:
                st.request.metrics.prompt_tokens = int(usage["prompt_tokens"])
            choices = chunk.get("choices") or []
            if not choices:
                continue
            choice = choices[0]
            text = _chunk_text(choice)
            finish = choice.get("finish_reason") or finish
            if text is not None:
                count += 1
                out = SeqOutput(rid, [-1], t_ns, texts=[text])
                if count >= limit and held is None:
                    held = out
                elif held is not None:  # a server that ignores max_tokens: the engine cuts it anyway
                    break
                else:
                    self._push(out)
        return finish, held

    def _push(self, out: SeqOutput) -> None:
        with self._cond:
            self._outputs.append(out)
            self._cond.notify()

    # ---- Backend interface (engine thread) ----
    def render_prompt(self, prompt: Prompt) -> list[int]:
        return []  # the server applies its own chat template

    def decode(self, token_ids: list[int]) -> str:
        return ""  # text arrives with every chunk

    def count_tokens(self, text: str) -> int:
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


def _chunk_text(choice: dict[str, Any]) -> str | None:
    """The text of one streamed choice, or None when the chunk carries no output (role or finish only)."""
    if "delta" in choice:
        delta = choice["delta"] or {}
        text = delta.get("content")
        if text is None:
            text = delta.get("reasoning_content")
        if text is None and delta.get("tool_calls"):
            text = json.dumps(delta["tool_calls"])
    else:
        text = choice.get("text")
    if not text and choice.get("finish_reason"):
        return None  # a closing chunk, not a token
    return text


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


def _one_line(e: Exception, base_url: str) -> str:
    if isinstance(e, EngineError):
        return str(e)
    if isinstance(e, (ConnectionError, socket.timeout, OSError)):
        return f"cannot reach {base_url}: {e}"
    return f"{type(e).__name__}: {e}"
