"""`workbench serve`: an OpenAI-compatible HTTP server (stdlib ThreadingHTTPServer) over one Engine;
concurrent clients share its batching, and every request is recorded as a session of kind "serve"."""
from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from engine import Engine, EngineError, Result, SamplingParams
from engine.types import flatten_content
from sessions.recorder import Recorder

MAX_BODY = 16 * 1024 * 1024
ROLES = ("system", "user", "assistant", "tool", "developer")


class ApiError(Exception):
    """Becomes an OpenAI-style error body: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status = status
        self.type = type_
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.status}}


class ServeApp:
    """What the handlers share: the engine, the recorder and the admission limit."""

    def __init__(self, engine: Engine, recorder: Recorder, *, max_queue: int = 64, default_max_tokens: int = 512):
        self.engine = engine
        self.recorder = recorder
        self.max_queue = max_queue
        self.default_max_tokens = default_max_tokens
        self._slots = threading.BoundedSemaphore(max_queue)
        self.created = int(time.time())
        names = [engine.model_name]
        if engine.spec is not None:
            names += [engine.spec.name, engine.spec.display_name]
        self.model_names = [n for i, n in enumerate(names) if n and n not in names[:i]]

    def admit(self) -> None:
        # a bounded queue: answer 429 at once rather than pile up threads and memory
        if not self._slots.acquire(blocking=False):
            raise ApiError(429, f"server is at capacity ({self.max_queue} requests queued or running); retry later",
                           "rate_limit_exceeded")

    def release(self) -> None:
        self._slots.release()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the listen backlog: 64 clients connecting at once must not wait for SYN retries

    def __init__(self, address: tuple[str, int], app: ServeApp):
        super().__init__(address, Handler)
        self.app = app


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # every request is in the database; no access log on stderr

    # ---- routing ----
    def do_GET(self) -> None:
        self._dispatch({"/v1/models": self._models, "/health": self._health, "/v1/health": self._health})

    def do_POST(self) -> None:
        self._dispatch({"/v1/chat/completions": self._chat, "/v1/completions": self._completions})

    def _dispatch(self, routes: dict[str, Any]) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            fn = routes.get(path)
            if fn is None:
                known = any(path in r for r in (("/v1/models", "/health", "/v1/health"), ("/v1/chat/completions", "/v1/completions")))
                if known:
                    raise ApiError(405, f"method {self.command} is not allowed on {path}")
                raise ApiError(404, f"no route {self.command} {path}", "not_found_error")
            fn()
        except ApiError as e:
            self._drain_body()
            self._send_json(e.status, e.body())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _drain_body(self) -> None:
        if getattr(self, "_body_read", False):
            return
        n = self.headers.get("Content-Length")
        if n and n.isdigit() and int(n) <= MAX_BODY:
            self.rfile.read(int(n))
        else:
            self.close_connection = True

    # ---- plain responses ----
    def _send_json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _health(self) -> None:
        self._send_json(200, {"status": "ok"})

    def _models(self) -> None:
        app = self.server.app
        data = [{"id": n, "object": "model", "created": app.created, "owned_by": "inference-workbench",
                 "root": n} for n in app.model_names]
        self._send_json(200, {"object": "list", "data": data})

    # ---- request body ----
    def _read_json(self) -> dict[str, Any]:
        self._body_read = True
        n = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise ApiError(411, "send the body with a Content-Length (chunked bodies are not supported)")
        if n is None or not n.isdigit():
            self.close_connection = True
            raise ApiError(411, "a JSON body with a Content-Length header is required")
        if int(n) > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, f"request body is larger than {MAX_BODY} bytes")
        raw = self.rfile.read(int(n))
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"the body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        return body

    # ---- completions ----
    def _chat(self) -> None:
        body = self._read_json()
        messages = _messages(body.get("messages"))
        self._generate(body, messages, "chat.completion", messages)

    def _completions(self) -> None:
        body = self._read_json()
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ApiError(400, "'prompt' must be a non-empty string", param="prompt")
        self._generate(body, prompt, "text_completion", [{"role": "user", "content": prompt}])

    def _generate(self, body: dict[str, Any], prompt: Any, obj: str, to_record: list[dict[str, Any]]) -> None:
        app = self.server.app
        self._check_model(body.get("model"))
        params = _sampling(body, 16 if obj == "text_completion" else app.default_max_tokens)
        stream = _flag(body, "stream")
        opts = body.get("stream_options") or {}
        include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        app.admit()
        try:
            sid = app.recorder.new_session("serve", model=app.engine.model_name, backend=app.engine.backend_name,
                                           title=_title(to_record))
            for m in to_record:
                app.recorder.add_message(sid, str(m.get("role")), flatten_content(m.get("content")))
            rid = uuid.uuid4().hex[:16]
            try:
                handle = app.engine.submit(prompt, params, request_id=rid,
                                           tags={"session_id": sid, "assistant_message": True})
            except EngineError as e:
                raise ApiError(400, str(e)) from None
            prefix = "chatcmpl-" if obj == "chat.completion" else "cmpl-"
            if stream:
                self._stream(handle, prefix + rid, obj, include_usage)
            else:
                self._whole(handle, prefix + rid, obj)
        finally:
            app.release()

    def _check_model(self, model: Any) -> None:
        names = self.server.app.model_names
        if model is None or model == "":
            return
        if not isinstance(model, str):
            raise ApiError(400, "'model' must be a string", param="model")
        if model not in names:
            raise ApiError(404, f"The model `{model}` does not exist; this server has {', '.join(names)}",
                           "not_found_error", "model")

    def _whole(self, handle, rid: str, obj: str) -> None:
        try:
            result = handle.result()
        except BaseException:
            handle.cancel()
            raise
        _raise_if_failed(result)
        m = result.metrics
        choice: dict[str, Any] = {"index": 0, "finish_reason": _finish(result), "logprobs": None}
        if obj == "chat.completion":
            choice["message"] = {"role": "assistant", "content": result.text}
        else:
            choice["text"] = result.text
        self._send_json(200, {"id": rid, "object": obj, "created": int(time.time()), "model": self.server.app.engine.model_name,
                              "choices": [choice], "usage": _usage(m)})

    def _stream(self, handle, rid: str, obj: str, include_usage: bool) -> None:
        """Send headers only once the first token (or the end) is known, so a request that fails
        before its first token still gets a proper 4xx/5xx status."""
        events = iter(handle)
        first = next(events, None)
        if first is None:
            _raise_if_failed(handle.result())
        chunk_obj = "chat.completion.chunk" if obj == "chat.completion" else "text_completion"
        model = self.server.app.engine.model_name
        created = int(time.time())
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            role_sent = False
            tail = ""  # text released without a token (a held-back stop prefix) goes with the finish chunk
            for ev in itertools.chain([] if first is None else [first], events):
                if ev.token_ids:
                    self._sse(_chunk(rid, chunk_obj, created, model, ev.text, None, role_sent))
                    role_sent = True
                else:
                    tail += ev.text
            result = handle.result()
            if result.finish_reason == "error":
                self._sse({"error": {"message": result.error or "generation failed", "type": "server_error", "code": 500}})
            else:
                self._sse(_chunk(rid, chunk_obj, created, model, tail or None, _finish(result), role_sent))
                if include_usage:
                    self._sse({"id": rid, "object": chunk_obj, "created": created, "model": model, "choices": [],
                               "usage": _usage(result.metrics)})
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            handle.cancel()  # the client went away; what it got is already recorded
            self.close_connection = True

    def _sse(self, obj: dict[str, Any]) -> None:
        self._write_chunk(b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


# ---- validation and shaping (pure functions) ----

def _messages(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(400, f"messages[{i}] needs a 'role' of {', '.join(ROLES)}", param="messages")
        content = m.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise ApiError(400, f"messages[{i}].content must be a string or a list of parts", param="messages")
        if isinstance(content, list):
            for part in content:
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise ApiError(400, f"messages[{i}].content: only text parts are supported", param="messages")
        msg = {"role": "system" if m["role"] == "developer" else m["role"], "content": flatten_content(content)}
        out.append(msg)
    return out


def _flag(body: dict[str, Any], key: str) -> bool:
    v = body.get(key, False)
    if not isinstance(v, bool):
        raise ApiError(400, f"'{key}' must be true or false", param=key)
    return v


def _number(body: dict[str, Any], key: str, default: Any, kind: type) -> Any:
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not float(v).is_integer()):
        raise ApiError(400, f"'{key}' must be {'an integer' if kind is int else 'a number'}", param=key)
    return kind(v)


def _sampling(body: dict[str, Any], default_max: int) -> SamplingParams:
    n = _number(body, "n", 1, int)
    if n != 1:
        raise ApiError(400, "only n=1 is supported", param="n")
    max_tokens = _number(body, "max_completion_tokens", None, int)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", default_max, int)
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise ApiError(400, "'stop' must be a string or a list of non-empty strings", param="stop")
    top_k = _number(body, "top_k", 0, int)
    ignore_eos = body.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise ApiError(400, "'ignore_eos' must be true or false", param="ignore_eos")
    try:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=_number(body, "temperature", 1.0, float),
            top_p=_number(body, "top_p", 1.0, float),
            top_k=max(0, top_k),  # vLLM uses -1 for "off"
            seed=_number(body, "seed", None, int),
            stop=stop,
            ignore_eos=ignore_eos,
        )
    except EngineError as e:
        raise ApiError(400, str(e)) from None


def _title(messages: list[dict[str, Any]]) -> str:
    users = [m for m in messages if m.get("role") == "user"]
    text = flatten_content((users or messages)[-1].get("content")).strip().replace("\n", " ")
    return text[:60] or "(empty)"


def _finish(result: Result) -> str:
    return result.finish_reason if result.finish_reason in ("stop", "length") else "abort"


def _usage(m) -> dict[str, int]:
    return {"prompt_tokens": m.prompt_tokens, "completion_tokens": m.output_tokens,
            "total_tokens": m.prompt_tokens + m.output_tokens}


def _raise_if_failed(result: Result) -> None:
    if result.finish_reason != "error":
        return
    msg = result.error or "generation failed"
    if not result.token_ids and ("context window" in msg or "prompt" in msg):
        raise ApiError(400, msg)
    raise ApiError(500, msg, "server_error")


def _chunk(rid: str, obj: str, created: int, model: str, text: str | None, finish: str | None,
           role_sent: bool) -> dict[str, Any]:
    if obj == "chat.completion.chunk":
        delta: dict[str, Any] = {} if text is None else {"content": text}
        if not role_sent:
            delta["role"] = "assistant"
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    else:
        choice = {"index": 0, "text": text if text is not None else "", "finish_reason": finish, "logprobs": None}
    return {"id": rid, "object": obj, "created": created, "model": model, "choices": [choice]}


def make_server(engine: Engine, recorder: Recorder, host: str = "127.0.0.1", port: int = 8000, *,
                max_queue: int = 64, default_max_tokens: int = 512) -> Server:
    app = ServeApp(engine, recorder, max_queue=max_queue, default_max_tokens=default_max_tokens)
    try:
        return Server((host, port), app)
    except OSError as e:
        raise EngineError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


__all__ = ["ApiError", "ServeApp", "Server", "make_server"]
