"""The Engine facade: one engine thread drives a backend step by step; callers submit requests
from any thread and read token events from per-request queues or from listeners."""
from __future__ import annotations

import itertools
import queue
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable, Iterator, Sequence

from engine.backends import Backend, create_backend, pick_backend
from engine.model_source import ModelSpec, resolve_model
from engine.types import (
    EngineError,
    EngineEvent,
    Prompt,
    Request,
    RequestFinished,
    RequestMetrics,
    RequestStarted,
    Result,
    SamplingParams,
    StepEvent,
    TokenEvent,
    TokenLogprob,
)

Listener = Callable[[EngineEvent], None]
_DONE = object()


class IncrementalDetokenizer:
    """vLLM-style: decode a short window of ids and emit only text that is final (no
    dangling half of a multi-byte character)."""

    __slots__ = ("_decode", "ids", "prefix_offset", "read_offset")

    def __init__(self, decode: Callable[[list[int]], str]):
        self._decode = decode
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix_text = self._decode(self.ids[self.prefix_offset : self.read_offset])
        new_text = self._decode(self.ids[self.prefix_offset :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.ids)
            return new_text[len(prefix_text) :]
        return ""


class _RequestState:
    __slots__ = ("request", "detok", "text", "emitted", "token_ids", "logprobs", "handle", "max_new", "done")

    def __init__(self, request: Request, decode: Callable[[list[int]], str], handle: "RequestHandle", max_new: int):
        self.request = request
        self.detok = IncrementalDetokenizer(decode)
        self.text = ""
        self.emitted = 0  # chars of text already sent in events
        self.token_ids: list[int] = []
        self.logprobs: list[TokenLogprob] | None = [] if request.params.logprobs is not None else None
        self.handle = handle
        self.max_new = max_new
        self.done = False


class RequestHandle:
    """A submitted request: iterate for TokenEvents, or wait for the Result."""

    def __init__(self, engine: "Engine", request_id: str, metrics: RequestMetrics):
        self._engine = engine
        self.request_id = request_id
        self.metrics = metrics  # filled in by the engine thread as the request runs
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._result: Result | None = None
        self._done = threading.Event()

    # engine thread
    def _push(self, event: TokenEvent) -> None:
        self._events.put(event)

    def _finish(self, result: Result) -> None:
        self._result = result
        self._done.set()
        self._events.put(_DONE)

    # caller side
    def __iter__(self) -> Iterator[TokenEvent]:
        try:
            while True:
                item = self._events.get()
                if item is _DONE:
                    return
                yield item
        finally:
            if not self._done.is_set():
                self.cancel()

    def cancel(self) -> None:
        self._engine.cancel(self.request_id)

    def result(self, timeout: float | None = None) -> Result:
        if not self._done.wait(timeout):
            raise TimeoutError(f"request {self.request_id} did not finish in {timeout} s")
        assert self._result is not None
        return self._result

    @property
    def done(self) -> bool:
        return self._done.is_set()


class Engine:
    def __init__(self, backend: Backend, spec: ModelSpec | None = None, backend_name: str = ""):
        self.backend = backend
        self.spec = spec
        self.backend_name = backend_name or backend.name
        self.model_name = backend.model_name
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._states: dict[str, _RequestState] = {}
        self._listeners: list[Listener] = []
        self._step_counter = itertools.count()
        self._stop = False
        self._finished_count = 0
        self._recent: deque[Result] = deque(maxlen=1000)
        self._last_step: StepEvent | None = None
        self._fatal: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="engine", daemon=True)
        self._thread.start()

    # ---- construction ----
    @classmethod
    def load(
        cls,
        model: str | None = None,
        backend: str = "auto",
        device: str = "auto",
        draft: str | None = None,
        speculation: str = "auto",
        **options: Any,
    ) -> "Engine":
        """Load a model: an embedded name (`smollm2-135m`), a GGUF file, an HF folder or hub id.
        `options` go to the backend (e.g. `n_ctx`, `n_threads`, `base_url`)."""
        if backend == "openai":
            spec = None if model is None else ModelSpec(model, "remote", model)
            b = create_backend(spec, "openai", **options)
            return cls(b, spec, "openai")
        spec = resolve_model(model)
        name = pick_backend(spec, backend, device)
        if name == "torch":
            options.setdefault("device", device)
            options.setdefault("draft", draft)
            options.setdefault("speculation", speculation)
        elif name == "llamacpp":
            options.setdefault("speculation", speculation)
        b = create_backend(spec, name, **options)
        return cls(b, spec, name)

    # ---- listeners ----
    def add_listener(self, fn: Listener) -> None:
        """`fn` is called in the engine thread for every event; it must not block."""
        self._listeners = [*self._listeners, fn]

    def remove_listener(self, fn: Listener) -> None:
        # `==`, not `is`: each `obj.method` access makes a new bound-method object
        self._listeners = [f for f in self._listeners if f != fn]

    def _emit(self, event: EngineEvent) -> None:
        for fn in self._listeners:
            try:
                fn(event)
            except Exception:  # a broken listener must not stop the engine
                pass

    # ---- submitting ----
    def render_prompt(self, prompt: Prompt, tools: list[dict] | None = None) -> list[int]:
        if isinstance(prompt, str):
            if not prompt.strip():
                raise EngineError("empty prompt")
        elif isinstance(prompt, list):
            if not prompt:
                raise EngineError("empty message list")
            for m in prompt:
                if not isinstance(m, dict) or "role" not in m:
                    raise EngineError("each chat message must be a dict with a 'role'")
        else:
            raise EngineError(f"a prompt is a string or a list of messages, not {type(prompt).__name__}")
        return self.backend.render_prompt(prompt, tools) if tools else self.backend.render_prompt(prompt)

    def tokenize(self, text: str) -> list[int]:
        """Raw text to token ids (no chat template); EngineError where the backend has no tokenizer."""
        return self.backend.tokenize(text)

    def submit(
        self,
        prompt: Prompt,
        params: SamplingParams | None = None,
        *,
        request_id: str | None = None,
        tags: dict[str, Any] | None = None,
        prompt_token_ids: list[int] | None = None,
        arrival_ns: int | None = None,
    ) -> RequestHandle:
        """`arrival_ns` (perf_counter ns): when the request really arrived, if before this call (an
        HTTP server that parsed and rendered it first); TTFT counts from there."""
        if self._fatal is not None:
            raise EngineError(f"engine stopped: {self._fatal}")
        arrival = arrival_ns if arrival_ns is not None else time.perf_counter_ns()
        params = params or SamplingParams()
        if params.logprobs is not None and not self.backend.supports_logprobs:
            raise EngineError(f"logprobs are not available from the {self.backend.name} backend")
        ids = prompt_token_ids if prompt_token_ids is not None else self.render_prompt(prompt)
        rid = request_id or uuid.uuid4().hex[:16]
        metrics = RequestMetrics(arrival_ns=arrival, prompt_tokens=len(ids))
        req = Request(rid, prompt, params, ids, metrics, dict(tags or {}))
        handle = RequestHandle(self, rid, metrics)
        self._inbox.put(("add", req, handle))
        self._wake.set()
        return handle

    def cancel(self, request_id: str) -> None:
        self._inbox.put(("cancel", request_id, None))
        self._wake.set()

    def generate(
        self, prompts: Prompt | Sequence[Prompt], params: SamplingParams | Sequence[SamplingParams] | None = None
    ) -> list[Result]:
        if isinstance(prompts, str) or (isinstance(prompts, list) and prompts and isinstance(prompts[0], dict)):
            prompts = [prompts]  # one prompt (a string or one message list)
        prompts = list(prompts)
        if params is None or isinstance(params, SamplingParams):
            plist = [params or SamplingParams()] * len(prompts)
        else:
            plist = list(params)
            if len(plist) != len(prompts):
                raise EngineError(f"{len(prompts)} prompts but {len(plist)} sampling params")
        handles = [self.submit(p, sp) for p, sp in zip(prompts, plist)]
        try:
            return [h.result() for h in handles]
        except BaseException:
            for h in handles:
                h.cancel()
            raise

    def stream(
        self, prompt: Prompt, params: SamplingParams | None = None, *, tags: dict[str, Any] | None = None
    ) -> "Stream":
        return Stream(self.submit(prompt, params, tags=tags))

    # ---- engine thread ----
    def _loop(self) -> None:
        try:
            while not self._stop:
                self._drain_inbox()
                if self._stop:
                    break
                if not self.backend.has_unfinished():
                    self._wake.wait(0.5)
                    self._wake.clear()
                    continue
                outputs, step_event = self.backend.step()
                for out in outputs:
                    self._apply(out)
                if step_event is not None:
                    step_event.step = next(self._step_counter)
                    self._last_step = step_event
                    self._emit(step_event)
        except BaseException as e:  # the backend itself broke: fail everything, loudly
            self._fatal = e
            for rid in list(self._states):
                self._finish(rid, "error", error=f"engine failure: {e}")
            raise

    def _drain_inbox(self) -> None:
        while True:
            try:
                op, a, b = self._inbox.get_nowait()
            except queue.Empty:
                return
            if op == "add":
                self._admit(a, b)
            elif op == "cancel":
                if a in self._states:
                    self._finish(a, "cancelled")
            elif op == "stop":
                self._stop = True

    def _admit(self, req: Request, handle: RequestHandle) -> None:
        n = len(req.prompt_token_ids)
        limit = self.backend.context_window
        max_new = req.params.max_tokens
        if limit:
            max_new = min(max_new, limit - n)
        state = _RequestState(req, self.backend.decode, handle, max_new)
        self._states[req.request_id] = state
        self._emit(RequestStarted(req.request_id, n, req.metrics.arrival_ns, req.params, req.tags))
        if limit and n >= limit:
            self._finish(req.request_id, "error", error=f"prompt has {n} tokens; the context window is {limit}")
            return
        self.backend.add_request(req)

    def _apply(self, out) -> None:
        state = self._states.get(out.request_id)
        if state is None or state.done:
            return
        if out.error is not None:
            self._finish(out.request_id, "error", error=out.error)
            return
        req = state.request
        m = req.metrics
        stops = req.params.stop
        finish: str | None = None
        first_index = len(state.token_ids)
        new_ids: list[int] = []
        for k, tid in enumerate(out.token_ids):
            if m.first_token_ns is None:
                m.first_token_ns = out.t_ns
            state.token_ids.append(tid)
            new_ids.append(tid)
            if state.logprobs is not None and out.logprobs is not None:
                state.logprobs.append(out.logprobs[k])
            m.token_times_ns.append(out.t_ns)
            if tid in self.backend.eos_token_ids and not req.params.ignore_eos:
                finish = "stop"
                break
            state.text += out.texts[k] if out.texts is not None else state.detok.add(tid)
            if stops and _find_stop(state, stops):
                finish = "stop"
                break
            if len(state.token_ids) >= state.max_new:
                finish = "length"
                break
        if finish is None and out.finish_reason is not None:
            finish = out.finish_reason
        m.output_tokens = len(state.token_ids)
        # hold back text that could still become a stop string
        hold = 0 if finish else _held_back(state.text, stops)
        upto = len(state.text) - hold
        delta = state.text[state.emitted : upto] if upto > state.emitted else ""
        state.emitted = max(state.emitted, upto)
        if new_ids:
            lps = state.logprobs[first_index:] if state.logprobs is not None else None
            ev = TokenEvent(req.request_id, first_index, new_ids, delta, out.t_ns, req.tags, lps)
            state.handle._push(ev)
            self._emit(ev)
        if finish:
            self._finish(req.request_id, finish)

    def _finish(self, request_id: str, reason: str, error: str | None = None) -> None:
        state = self._states.pop(request_id, None)
        if state is None:
            return
        state.done = True
        try:
            self.backend.free_request(request_id)
        except Exception:
            pass
        req = state.request
        m = req.metrics
        m.finished_ns = time.perf_counter_ns()
        m.output_tokens = len(state.token_ids)
        text = state.text
        if state.emitted < len(text) and reason != "error":
            # flush what was held back for a stop string that never came
            tail = text[state.emitted :]
            ev = TokenEvent(req.request_id, len(state.token_ids), [], tail, m.finished_ns, req.tags)
            state.handle._push(ev)
            self._emit(ev)
        result = Result(req.request_id, text, list(state.token_ids), m, reason, error, req.tags,
                        list(state.logprobs) if state.logprobs is not None else None)
        self._recent.append(result)
        self._finished_count += 1
        self._emit(RequestFinished(req.request_id, result, req.tags))
        state.handle._finish(result)

    # ---- figures ----
    def stats(self) -> dict[str, Any]:
        recent = list(self._recent)
        ttfts = [r.metrics.ttft_s for r in recent if r.metrics.ttft_s is not None]
        out: dict[str, Any] = {
            "model": self.model_name,
            "backend": self.backend_name,
            "context_window": self.backend.context_window,
            "requests_finished": self._finished_count,
            "running": len(self._states),
        }
        if ttfts:
            from engine.types import percentile

            out["p50_ttft_ms"] = percentile(ttfts, 50) * 1e3
            out["p95_ttft_ms"] = percentile(ttfts, 95) * 1e3
        out.update(self.backend.stats())
        last = self._last_step
        if last is not None:
            out.setdefault("batch_size", last.batch_size)
            out.setdefault("roofline_fraction", last.roofline_fraction)
        return out

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def close(self) -> None:
        if self._thread.is_alive():
            for rid in list(self._states):
                self.cancel(rid)
            self._inbox.put(("stop", None, None))
            self._wake.set()
            self._thread.join(timeout=10)
        self.backend.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _find_stop(state: _RequestState, stops: list[str]) -> bool:
    """Cut state.text at the first stop string; True if one was found."""
    longest = max(len(s) for s in stops)
    start = max(0, state.emitted - longest)
    best = -1
    for s in stops:
        i = state.text.find(s, start)
        if i != -1 and (best == -1 or i < best):
            best = i
    if best == -1:
        return False
    state.text = state.text[:best]
    state.emitted = min(state.emitted, best)
    return True


def _held_back(text: str, stops: list[str]) -> int:
    """Length of the tail of `text` that is a proper prefix of some stop string."""
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                hold = max(hold, k)
                break
    return hold


class Stream:
    """Iterator of TokenEvents for one request; `.result` is set once it ends. Leaving the loop
    early (break, exception, Ctrl+C) cancels the request; tokens already produced are kept."""

    def __init__(self, handle: RequestHandle):
        self.handle = handle
        self.request_id = handle.request_id

    def __iter__(self) -> Iterator[TokenEvent]:
        return iter(self.handle)

    def cancel(self) -> None:
        self.handle.cancel()

    @property
    def result(self) -> Result:
        return self.handle.result()
