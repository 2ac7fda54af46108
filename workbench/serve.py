"""`workbench serve`: an OpenAI-compatible server (Starlette on uvicorn) over one Engine. Concurrent
clients share its batching; engine events reach the event loop through one bridge, never a blocked
thread per request; every request is recorded as a session of kind "serve"."""
from __future__ import annotations

import asyncio
import base64
import hmac
import ipaddress
import json
import socket
import threading
import time
import uuid
from typing import Any, AsyncIterator, Callable

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from engine import Engine, EngineError, RequestFinished, Result, TokenEvent
from sessions.recorder import Recorder
from workbench import serve_api as api
from workbench.serve_api import ApiError
from workbench.serve_metrics import ServeMetrics

MAX_BODY = 16 * 1024 * 1024
RETRY_AFTER_S = 1
EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class EventBridge:
    """Engine thread -> event loop. The engine listener appends the events of requests someone
    waits for and schedules one drain on the loop for a whole burst (a step of 64 sequences is one
    wake-up, not 64)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queues: dict[str, asyncio.Queue] = {}
        self._pending: list[Any] = []
        self._lock = threading.Lock()
        self._scheduled = False

    def open(self, request_id: str, queue: asyncio.Queue) -> None:
        self.queues[request_id] = queue

    def close(self, request_id: str) -> None:
        self.queues.pop(request_id, None)

    def on_event(self, ev: Any) -> None:  # engine thread
        if not isinstance(ev, (TokenEvent, RequestFinished)) or ev.request_id not in self.queues:
            return
        with self._lock:
            self._pending.append(ev)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: the server is stopping
            pass

    def _drain(self) -> None:
        with self._lock:
            items, self._pending = self._pending, []
            self._scheduled = False
        for ev in items:
            q = self.queues.get(ev.request_id)
            if q is not None:
                q.put_nowait(ev)


class ServeApp:
    """What the routes share: the engine, the recorder, admission, the API key and the metrics."""

    def __init__(self, engine: Engine, recorder: Recorder, *, max_queue: int = 64, default_max_tokens: int = 512,
                 api_key: str | None = None, max_body: int = MAX_BODY, tracer: Any = None):
        self.engine = engine
        self.recorder = recorder
        self.max_queue = max_queue
        self.default_max_tokens = default_max_tokens
        self.api_key = api_key
        self.max_body = max_body
        self.tracer = tracer
        self.created = int(time.time())
        names = [engine.model_name]
        if engine.spec is not None:
            names += [engine.spec.name, engine.spec.display_name]
        self.model_names = [n for i, n in enumerate(names) if n and n not in names[:i]]
        self.in_flight = 0
        self.metrics = ServeMetrics(engine.model_name, engine.backend.context_window)
        self.bridge: EventBridge | None = None
        self._embedder = None
        self._embedder_lock = threading.Lock()

    # ---- lifespan ----
    def start(self) -> None:
        self.bridge = EventBridge(asyncio.get_running_loop())
        self.engine.add_listener(self.bridge.on_event)
        self.engine.add_listener(self.metrics.on_event)

    def stop(self) -> None:
        if self.bridge is not None:
            self.engine.remove_listener(self.bridge.on_event)
        self.engine.remove_listener(self.metrics.on_event)

    # ---- admission ----
    def admit(self, n: int) -> None:
        # a bounded queue: answer 429 at once rather than pile up requests and memory
        if self.in_flight + n > self.max_queue:
            self.metrics.rejections.inc()
            raise ApiError(429, f"server is at capacity ({self.max_queue} requests queued or running); retry later",
                           "rate_limit_exceeded", headers={"Retry-After": str(RETRY_AFTER_S)})
        self.in_flight += n

    def release(self, n: int) -> None:
        self.in_flight -= n

    def check_model(self, model: str | None, also: tuple[str, ...] = ()) -> None:
        if not model or model in self.model_names or model in also:
            return
        names = ", ".join(self.model_names + list(also))
        raise ApiError(404, f"The model `{model}` does not exist; this server has {names}", "not_found_error",
                       "model")

    def embedder(self):
        with self._embedder_lock:
            if self._embedder is None:
                from engine.embeddings import load_embedder

                self._embedder = load_embedder(EMBEDDING_MODEL)
            return self._embedder


class Flight:
    """The engine requests of one HTTP request (n choices): their shared event queue, the
    admission slots they hold, and one `close()` that cancels what is unfinished."""

    def __init__(self, app: ServeApp, n: int):
        self.app = app
        self.n = n
        self.queue: asyncio.Queue = asyncio.Queue()
        self.handles: list[Any] = []
        self.index: dict[str, int] = {}
        self.results: dict[int, Result] = {}
        self.closed = False

    def submit(self, prompt: Any, params: list, base_id: str, tags: dict, prompt_ids: list[int] | None,
               arrival_ns: int) -> None:
        for i, p in enumerate(params):
            rid = base_id if self.n == 1 else f"{base_id}-{i}"
            self.index[rid] = i
            self.app.bridge.open(rid, self.queue)
            try:
                h = self.app.engine.submit(prompt, p, request_id=rid, prompt_token_ids=prompt_ids, arrival_ns=arrival_ns,
                                           tags={**tags, "assistant_message": i == 0})
            except EngineError as e:
                raise ApiError(400, str(e)) from None
            self.handles.append(h)

    @property
    def finished(self) -> bool:
        return len(self.results) == len(self.handles)

    async def next_event(self) -> tuple[int, Any]:
        ev = await self.queue.get()
        i = self.index[ev.request_id]
        if isinstance(ev, RequestFinished):
            self.results[i] = ev.result
        return i, ev

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for h in self.handles:
            if not h.done:
                h.cancel()  # a client that left: what it was sent is already recorded
        for rid in self.index:
            self.app.bridge.close(rid)
        self.app.release(self.n)


# ---- request bodies ----

async def read_json(request: Request, limit: int) -> Any:
    n = request.headers.get("content-length")
    if n is not None and n.isdigit() and int(n) > limit:
        raise ApiError(413, f"request body is larger than {limit} bytes")
    body = bytearray()
    try:
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise ApiError(413, f"request body is larger than {limit} bytes")
    except ClientDisconnect:
        raise ApiError(400, "the client closed the connection before sending the whole body") from None
    if not body:
        raise ApiError(400, "a JSON body is required")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None


async def wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


def _finish(result: Result, tool_calls: list) -> str:
    if tool_calls:
        return "tool_calls"
    return result.finish_reason if result.finish_reason in ("stop", "length") else "abort"


def _usage(results: list[Result]) -> dict[str, int]:
    prompt = results[0].metrics.prompt_tokens if results else 0
    out = sum(r.metrics.output_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}


def _raise_if_failed(result: Result) -> None:
    if result.finish_reason != "error":
        return
    msg = result.error or "generation failed"
    if not result.token_ids and ("context window" in msg or "prompt" in msg):
        raise ApiError(400, msg)
    raise ApiError(500, msg, "server_error")


def _title(messages: list[dict[str, Any]]) -> str:
    users = [m for m in messages if m.get("role") == "user"]
    text = str((users or messages)[-1].get("content") or "").strip().replace("\n", " ")
    return text[:60] or "(empty)"


# ---- one generation, streamed or whole ----

class Plan:
    """What a completion request asks of the engine, after validation and rendering."""

    def __init__(self, kind: str, prompt: Any, prompt_ids: list[int] | None, params: list, record: list[dict],
                 shaper: Callable[[], api.ReplyText], stream: bool, include_usage: bool, token_ids: bool,
                 arrival_ns: int):
        self.kind = kind  # "chat" | "text"
        self.arrival_ns = arrival_ns  # when the HTTP request came in: the server's TTFT counts from here
        self.prompt = prompt
        self.prompt_ids = prompt_ids
        self.params = params
        self.record = record
        self.shaper = shaper
        self.stream = stream
        self.include_usage = include_usage
        self.token_ids = token_ids


async def generate(request: Request, app: ServeApp, plan: Plan) -> Response:
    n = len(plan.params)
    app.admit(n)
    flight = Flight(app, n)
    streaming = False
    try:
        sid = app.recorder.new_session("serve", model=app.engine.model_name, backend=app.engine.backend_name,
                                       title=_title(plan.record))
        for m in plan.record:
            app.recorder.add_message(sid, str(m.get("role")), str(m.get("content") or ""))
        base = uuid.uuid4().hex[:16]
        flight.submit(plan.prompt, plan.params, base, {"session_id": sid}, plan.prompt_ids, plan.arrival_ns)
        rid = ("chatcmpl-" if plan.kind == "chat" else "cmpl-") + base
        gone = asyncio.ensure_future(wait_disconnect(request))
        try:
            if plan.stream:
                first = await _race(flight.next_event(), gone)
                if first is None:
                    return Response(status_code=499)
                if isinstance(first[1], RequestFinished) and not first[1].result.token_ids:
                    _raise_if_failed(first[1].result)
                streaming = True
                return FlightStream(flight, _stream(app, flight, plan, rid, first))
            while not flight.finished:
                if await _race(flight.next_event(), gone) is None:
                    return Response(status_code=499)  # nobody reads it; the request is cancelled
            return JSONResponse(_whole(app, flight, plan, rid))
        finally:
            gone.cancel()
    finally:
        if not streaming:
            flight.close()


class FlightStream(StreamingResponse):
    """SSE whose flight is closed however the response ends, even when the client left before
    the first byte (then the body generator never starts, and its `finally` never runs)."""

    def __init__(self, flight: Flight, body: AsyncIterator[bytes]):
        super().__init__(body, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.flight = flight

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.flight.close()


async def _race(event: Any, gone: asyncio.Future) -> Any:
    """The awaited event, or None when the client disconnected first."""
    task = asyncio.ensure_future(event)
    done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return task.result()
    task.cancel()
    return None


def _whole(app: ServeApp, flight: Flight, plan: Plan, rid: str) -> dict[str, Any]:
    results = [flight.results[i] for i in range(flight.n)]
    for r in results:
        _raise_if_failed(r)
    choices = []
    for i, r in enumerate(results):
        shaper = plan.shaper()
        shaper.feed(r.text)
        content, calls = shaper.finish()
        choice: dict[str, Any] = {"index": i, "finish_reason": _finish(r, calls),
                                  "logprobs": _logprobs(app, plan, r.logprobs)}
        if plan.kind == "chat":
            msg: dict[str, Any] = {"role": "assistant", "content": content}
            if calls:
                msg["tool_calls"] = calls
            choice["message"] = msg
        else:
            choice["text"] = content or ""
        if plan.token_ids:
            choice["token_ids"] = r.token_ids
        choices.append(choice)
    obj = "chat.completion" if plan.kind == "chat" else "text_completion"
    return {"id": rid, "object": obj, "created": int(time.time()), "model": app.engine.model_name,
            "choices": choices, "usage": _usage(results)}


def _logprobs(app: ServeApp, plan: Plan, lps: list | None, offset: int = 0) -> dict[str, Any] | None:
    if lps is None:
        return None
    decode = app.engine.backend.decode
    return api.chat_logprobs_body(lps, decode) if plan.kind == "chat" else \
        api.completion_logprobs_body(lps, decode, offset)


async def _stream(app: ServeApp, flight: Flight, plan: Plan, rid: str, first: tuple[int, Any]) -> AsyncIterator[bytes]:
    """SSE chunks as the engine makes tokens. Cancelled by Starlette when the client goes away:
    `finally` then cancels the engine requests, which keep their tokens, marked cancelled."""
    chat = plan.kind == "chat"
    wants_logprobs = plan.params[0].logprobs is not None
    obj = "chat.completion.chunk" if chat else "text_completion"
    model = app.engine.model_name
    created = int(time.time())
    shapers = [plan.shaper() for _ in range(flight.n)]
    role_sent = [False] * flight.n
    # logprobs of tokens whose text the shaper still holds: they go out with the next chunk
    pending: list[list] = [[] for _ in range(flight.n)]
    sent_chars = [0] * flight.n

    def chunk(i: int, text: str | None, finish: str | None = None, ids: list[int] | None = None,
              calls: list | None = None) -> bytes:
        if chat:
            delta: dict[str, Any] = {}
            if not role_sent[i]:
                delta["role"] = "assistant"
                role_sent[i] = True
            if text:
                delta["content"] = text
            if calls:
                delta["tool_calls"] = [{"index": k, **c} for k, c in enumerate(calls)]
            choice: dict[str, Any] = {"index": i, "delta": delta, "finish_reason": finish}
        else:
            choice = {"index": i, "text": text or "", "finish_reason": finish}
        lps, pending[i] = (pending[i] or None) if wants_logprobs else None, []
        choice["logprobs"] = _logprobs(app, plan, lps, sent_chars[i])
        if lps:
            sent_chars[i] += sum(len(x) for x in choice["logprobs"]["tokens"]) if not chat else 0
        if ids is not None and plan.token_ids:
            choice["token_ids"] = ids
        return sse({"id": rid, "object": obj, "created": created, "model": model, "choices": [choice]})

    try:
        event: tuple[int, Any] | None = first
        while event is not None:
            i, ev = event
            if isinstance(ev, TokenEvent):
                if ev.logprobs:
                    pending[i].extend(ev.logprobs)
                text = shapers[i].feed(ev.text)
                if text or plan.token_ids:  # a chunk without text is no news to a client
                    yield chunk(i, text, ids=ev.token_ids)
            else:
                r = ev.result
                if r.finish_reason == "error":
                    yield sse({"error": {"message": r.error or "generation failed", "type": "server_error", "code": 500}})
                else:
                    content, calls = shapers[i].finish()
                    yield chunk(i, shapers[i].tail(content), _finish(r, calls), calls=calls)
            event = None if flight.finished else await flight.next_event()
        if plan.include_usage:
            results = [flight.results[i] for i in range(flight.n)]
            yield sse({"id": rid, "object": obj, "created": created, "model": model, "choices": [],
                       "usage": _usage(results)})
        yield b"data: [DONE]\n\n"
    finally:
        flight.close()


# ---- routes ----

def _app(request: Request) -> ServeApp:
    return request.app.state.serve


async def health(request: Request) -> Response:
    app = _app(request)
    if getattr(app.engine, "_fatal", None) is not None:
        return JSONResponse({"status": "error", "error": str(app.engine._fatal)}, status_code=503)
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    return Response(_app(request).metrics.render(), media_type=ServeMetrics.content_type)


async def models(request: Request) -> Response:
    app = _app(request)
    data = [{"id": n, "object": "model", "created": app.created, "owned_by": "inference-workbench", "root": n,
             "max_model_len": app.engine.backend.context_window or None} for n in app.model_names]
    data.append({"id": EMBEDDING_MODEL, "object": "model", "created": app.created, "owned_by": "inference-workbench",
                 "root": EMBEDDING_MODEL})
    return JSONResponse({"object": "list", "data": data})


async def chat_completions(request: Request) -> Response:
    arrival = time.perf_counter_ns()
    app = _app(request)
    req: api.ChatRequest = api.parse(api.ChatRequest, await read_json(request, app.max_body))
    app.check_model(req.model)
    max_tokens = req.max_completion_tokens or req.max_tokens or app.default_max_tokens
    params = api.sampling_params(req, max_tokens, app.engine.backend_name, api.chat_logprobs(req),
                                 app.engine.backend.supports_logprobs)
    messages = api.plain_messages(req)
    tools = [t.model_dump(exclude_none=True) for t in req.tools or []] if req.tool_choice != "none" else []
    choice = req.tool_choice.model_dump() if isinstance(req.tool_choice, api.NamedToolChoice) else req.tool_choice
    json_object = req.response_format is not None and req.response_format.type != "text"
    ids, prompt, prefill = await asyncio.to_thread(_render_chat, app.engine, messages, tools, choice, json_object)
    plan = Plan("chat", prompt, ids, params, messages,
                lambda: api.ReplyText(prefill, tools=bool(tools), json_object=json_object),
                req.stream, bool(req.stream_options and req.stream_options.include_usage), req.return_token_ids,
                arrival)
    return await generate(request, app, plan)


def _render_chat(engine: Engine, messages: list[dict], tools: list[dict], choice: Any,
                 json_object: bool) -> tuple[list[int] | None, list[dict], str]:
    """(prompt ids, the messages they came from, prefill): tools go to the chat template; a template
    that ignores them gets them folded into the system message. A forced tool call or a JSON
    object starts the reply for the model (the prefill) where the backend can tokenize."""
    prompt = messages
    try:
        if tools:
            ids = engine.render_prompt(messages, tools=tools)
            if ids == engine.render_prompt(messages):
                prompt = api.fold_tools(messages, tools, choice)
                ids = engine.render_prompt(prompt)
        elif json_object:
            prompt = [{"role": "system", "content": api.JSON_OBJECT_PROMPT}] + messages if messages[0]["role"] != "system" \
                else [{**messages[0], "content": f"{messages[0]['content']}\n\n{api.JSON_OBJECT_PROMPT}"}] + messages[1:]
            ids = engine.render_prompt(prompt)
        else:
            ids = engine.render_prompt(messages)
    except EngineError as e:
        raise ApiError(400, str(e), param="messages") from None
    prefill = api.tool_prefill(choice) if tools else ("{" if json_object else "")
    if prefill and ids:
        try:
            ids = ids + engine.tokenize(prefill)
        except EngineError:
            prefill = ""
    else:
        prefill = ""
    return ids or None, prompt, prefill


async def completions(request: Request) -> Response:
    arrival = time.perf_counter_ns()
    app = _app(request)
    req: api.CompletionRequest = api.parse(api.CompletionRequest, await read_json(request, app.max_body))
    app.check_model(req.model)
    if req.echo or req.suffix:
        raise ApiError(400, "'echo' and 'suffix' are not supported", param="echo" if req.echo else "suffix")
    prompt = req.prompt
    if isinstance(prompt, list) and len(prompt) == 1 and not isinstance(prompt[0], int):
        prompt = prompt[0]
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        raise ApiError(400, "one prompt per request (send a string or a list of token ids)", param="prompt")
    if not prompt or (isinstance(prompt, str) and not prompt.strip()):
        raise ApiError(400, "'prompt' must be a non-empty string or list of token ids", param="prompt")
    params = api.sampling_params(req, req.max_tokens or 16, app.engine.backend_name, api.completion_logprobs(req),
                                 app.engine.backend.supports_logprobs)
    if isinstance(prompt, list):
        ids, text = list(prompt), app.engine.backend.decode(list(prompt))
    else:
        text = prompt
        try:  # a completion continues the raw text: no chat template
            ids = await asyncio.to_thread(app.engine.tokenize, prompt)
        except EngineError:
            ids = None  # a remote backend: the server it forwards to tokenizes
    plan = Plan("text", text, ids, params, [{"role": "user", "content": text}], api.ReplyText, req.stream,
                bool(req.stream_options and req.stream_options.include_usage), req.return_token_ids, arrival)
    return await generate(request, app, plan)


async def embeddings(request: Request) -> Response:
    app = _app(request)
    req: api.EmbeddingRequest = api.parse(api.EmbeddingRequest, await read_json(request, app.max_body))
    if req.model not in (None, "", EMBEDDING_MODEL):
        raise ApiError(404, f"The model `{req.model}` does not exist; embeddings come from {EMBEDDING_MODEL}",
                       "not_found_error", "model")
    texts = [req.input] if isinstance(req.input, str) else req.input
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ApiError(400, "'input' must be a string or a list of strings (token ids are not supported)",
                       param="input")
    try:
        emb = await asyncio.to_thread(app.embedder)
        vecs, tokens = await asyncio.to_thread(_embed, emb, texts)
    except EngineError as e:
        raise ApiError(500, str(e), "server_error") from None
    if req.dimensions not in (None, emb.dim):
        raise ApiError(400, f"{EMBEDDING_MODEL} makes {emb.dim}-dimensional vectors", param="dimensions")
    data = []
    for i, v in enumerate(vecs):
        value: Any = base64.b64encode(v.astype("<f4").tobytes()).decode() if req.encoding_format == "base64" \
            else [float(x) for x in v]
        data.append({"object": "embedding", "index": i, "embedding": value})
    return JSONResponse({"object": "list", "data": data, "model": EMBEDDING_MODEL,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def _embed(emb, texts: list[str]) -> tuple[np.ndarray, int]:
    vecs = emb.encode(texts)
    tok = getattr(emb._model, "tokenizer", None)
    tokens = sum(len(tok(t)["input_ids"]) for t in texts) if tok is not None else 0
    return vecs, tokens


# ---- errors and auth ----

async def _api_error(request: Request, exc: ApiError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 405:
        err = ApiError(405, f"method {request.method} is not allowed on {request.url.path}")
    elif exc.status_code == 404:
        err = ApiError(404, f"no route {request.method} {request.url.path}", "not_found_error")
    else:
        err = ApiError(exc.status_code, str(exc.detail))
    return JSONResponse(err.body(), status_code=err.status)


async def _server_error(request: Request, exc: Exception) -> Response:
    err = ApiError(500, f"{type(exc).__name__}: {exc}", "server_error")
    return JSONResponse(err.body(), status_code=500)


class BearerAuth:
    """With an API key set, /v1/* needs `Authorization: Bearer KEY`; /health and /metrics stay open
    (probes and scrapers), as in vLLM."""

    def __init__(self, app: Any, key: str | None):
        self.app = app
        self.key = key.encode() if key else None

    async def __call__(self, scope, receive, send) -> None:
        if self.key is None or scope["type"] != "http" or not scope["path"].startswith("/v1"):
            return await self.app(scope, receive, send)
        auth = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = auth.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key):
            return await self.app(scope, receive, send)
        err = ApiError(401, "Incorrect API key provided", code="invalid_api_key")
        await JSONResponse(err.body(), status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)


def build_app(serve: ServeApp) -> Any:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_):
        serve.start()
        try:
            yield
        finally:
            serve.stop()

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
    ]
    star = Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error})
    star.state.serve = serve
    return BearerAuth(star, serve.api_key)


# ---- listening ----

def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """Bind here, before uvicorn, so a busy port is one clear error and port 0 tells its number."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # 64 clients connecting at once must not wait for SYN retries
    except OSError as e:
        sock.close()
        raise EngineError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def run_server(asgi: Any, sock: socket.socket) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn handles both and lets open streams finish, briefly)."""
    import signal

    import uvicorn

    config = uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=30,
                            timeout_graceful_shutdown=5, server_header=False)
    # uvicorn raises the signal it caught again once it has stopped, with the handlers it found;
    # these do nothing, so the caller goes on to flush the recorder and exits 0
    before = {s: signal.signal(s, lambda signum, frame: None) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


__all__ = ["ApiError", "EventBridge", "ServeApp", "build_app", "is_loopback", "listen", "run_server"]
