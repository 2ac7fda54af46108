"""Wires engine + recorder: how an engine is loaded from the config and a chat session started (for
the CLI and the app), and the app's ChatService, which owns the store, the engine, the semantic cache,
the current session's history, and a buffer the engine thread appends to and the UI drains on a timer."""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from engine.types import EngineEvent


def freeze_heap() -> None:
    """Move every object alive now into the GC's permanent generation. After torch or a model
    loads, a full collection walks millions of long-lived objects and stalled the UI for
    ~400 ms in the middle of a stream; frozen objects are never walked again. O(1)."""
    import gc

    gc.freeze()


def load_engine(config: dict[str, dict[str, Any]], *, model: str | None, backend: str,
                listeners: Iterable[Callable[[EngineEvent], None]] = (), **options: Any):
    """Engine.load with the [engine] settings the backend takes (llama.cpp's context window and
    threads); `options` win over them. `listeners` hear every event from the first request on."""
    from engine import Engine

    cfg = config["engine"]
    if backend in ("auto", "llamacpp"):
        options.setdefault("n_ctx", cfg["n_ctx"])
        if cfg["threads"]:
            options.setdefault("n_threads", cfg["threads"])
    engine = Engine.load(model=model, backend=backend, **options)
    for fn in listeners:
        engine.add_listener(fn)
    return engine


def start_session(recorder, engine, first_prompt: str, system: str) -> str:
    """A new chat session on `engine`, titled by the first prompt's first line, with the engine's
    steps recorded under it and the system prompt, when there is one, as its first message."""
    sid = recorder.new_session("chat", model=engine.model_name, backend=engine.backend_name,
                               title=first_prompt.strip().splitlines()[0][:80], system_prompt=system or None)
    recorder.step_session_id = sid
    if system:
        recorder.add_message(sid, "system", system)
    return sid


class EventBuffer:
    """Engine listener: an O(1) append in the engine thread; the UI takes everything at once."""

    def __init__(self) -> None:
        self._events: deque[EngineEvent] = deque()

    def on_event(self, event: EngineEvent) -> None:
        self._events.append(event)

    def drain(self) -> list[EngineEvent]:
        out = []
        pop = self._events.popleft
        while self._events:
            out.append(pop())
        return out


@dataclass(slots=True)
class Turn:
    """One user turn as it left the service: the engine's handle, or the semantic cache's hit."""

    text: str
    messages: list[dict[str, Any]]  # what the engine got: trimmed when the budget policy is live
    handle: Any = None  # engine RequestHandle; None when the cache answered
    hit: Any = None  # engine.cache.semantic_cache.Hit (served, or audited when hit.audit)
    scope: Any = None  # engine.cache.semantic_cache.CacheScope; None: not cacheable (sampled) or no cache

    @property
    def cached(self) -> bool:
        return self.hit is not None and not self.hit.audit


class ChatService:
    def __init__(self, *, db_path: str | None, model: str, backend: str, config: dict[str, dict[str, Any]]):
        self.db_path = db_path
        self.model = model
        self.backend = backend
        self.config = config
        self.store = None
        self.recorder = None
        self.engine = None
        self.buffer = EventBuffer()
        self.session_id: str | None = None
        self.history: list[dict[str, str]] = []
        self.active = None  # RequestHandle of the reply streaming now
        self.cache = None  # engine.cache.semantic_cache.SemanticCache over the store, when enabled
        self._lock = threading.Lock()
        self._completing = threading.Lock()  # held while a finished reply goes into the cache

    # ---- lifecycle (blocking; call from worker threads) ----
    def open_store(self) -> None:
        from sessions.recorder import Recorder
        from sessions.store import Store

        self.store = Store(self.db_path)
        self.recorder = Recorder(self.store)
        c = self.config.get("semantic_cache") or {}
        if c.get("enabled"):
            from engine.cache.semantic_cache import SemanticCache, SemanticCacheConfig
            from sessions.cache_store import CacheStore

            # entries load from DuckDB now; the embedding model loads on the first cacheable turn
            self.cache = SemanticCache(SemanticCacheConfig.from_dict(c), backing=CacheStore(self.store))

    def load_engine(self):
        listeners = [self.buffer.on_event] + ([self.recorder.on_event] if self.recorder is not None else [])
        self.engine = load_engine(self.config, model=self.model, backend=self.backend, listeners=listeners)
        freeze_heap()
        return self.engine

    def close(self) -> None:
        if self.active is not None and not self.active.done:
            self.active.cancel()
            try:
                self.active.result(timeout=10)
            except TimeoutError:
                pass
        # let a reply being written to the cache finish before the store closes under it
        if self._completing.acquire(timeout=30):
            self._completing.release()
        if self.engine is not None:
            self.engine.close()
        if self.recorder is not None:
            try:
                self.recorder.flush()
            finally:
                self.recorder.close()
        if self.store is not None:
            self.store.close()

    # ---- sessions ----
    @property
    def system_prompt(self) -> str:
        return self.config["chat"]["system_prompt"]

    def new_session(self) -> None:
        self.session_id = None
        self.history = []

    def _ensure_session(self, first_prompt: str) -> str:
        assert self.recorder is not None and self.engine is not None
        if self.session_id is None:
            system = self.system_prompt
            self.session_id = start_session(self.recorder, self.engine, first_prompt, system)
            if system:
                self.history.append({"role": "system", "content": system})
        return self.session_id

    def reopen(self, session: dict[str, Any]) -> None:
        """Continue a stored session: its messages become the history of the next turn."""
        assert self.recorder is not None
        self.session_id = session["id"]
        self.history = [{"role": m["role"], "content": m["content"]} for m in session["messages"]]
        self.recorder.resume_session(session["id"])
        self.recorder.step_session_id = session["id"]

    # ---- turns (blocking: call from a worker thread) ----
    @property
    def budget_config(self):
        from sessions.budget import BudgetConfig

        return BudgetConfig.from_dict(self.config["budget"])

    def send(self, text: str) -> Turn:
        """Record the user turn, trim the context when the budget policy is live, then answer from
        the semantic cache or submit to the engine. Embeds the prompt: never on the UI thread."""
        from engine import SamplingParams

        assert self.engine is not None and self.recorder is not None
        c = self.config["chat"]
        sid = self._ensure_session(text)
        self.history.append({"role": "user", "content": text})
        self.recorder.add_message(sid, "user", text)
        params = SamplingParams(max_tokens=c["max_tokens"], temperature=c["temperature"], top_p=c["top_p"])
        turn = Turn(text, list(self.history))
        self._apply_budget_policy(turn, params)
        if self.cache is not None:
            turn.scope = self.cache.scope_for(self.engine.model_name, turn.messages, params)
            turn.hit = self.cache.lookup(turn.messages, turn.scope) if turn.scope is not None else None
            freeze_heap()  # the first lookup loads the embedding model (torch): freeze it out of the GC
        if turn.cached:
            hit = turn.hit
            self.history.append({"role": "assistant", "content": hit.answer})
            self.recorder.add_message(sid, "assistant", hit.answer, cache_entry_id=hit.entry_id,
                                      cache_similarity=hit.similarity)
            return turn
        turn.handle = self.engine.submit(turn.messages, params, tags={"session_id": sid, "assistant_message": True})
        self.active = turn.handle
        return turn

    def _apply_budget_policy(self, turn: Turn, params) -> None:
        """With [budget] apply_to_chat, the engine gets the history trimmed to the caps; the full
        history stays in the session, so the budget panel can show before and after."""
        from sessions.budget import BudgetTokenizer, LLMCall, apply_policy

        cfg = self.budget_config
        if not cfg.apply_to_chat or not any(cfg.caps.values()):
            return
        call = LLMCall("live", 0, turn.messages, [], self.engine.model_name, params.max_tokens)
        plan = apply_policy(call, BudgetTokenizer.from_engine(self.engine), cfg)
        turn.messages = plan.messages

    def complete(self, turn: Turn):
        """Wait for the engine's reply and keep it in the semantic cache (an audited hit records
        whether the fresh answer differed instead). Returns the Result."""
        assert turn.handle is not None
        with self._completing:
            result = turn.handle.result()
            if self.cache is not None and turn.scope is not None and result.text:
                if turn.hit is not None:
                    self.cache.record_audit(turn.hit, result.text, turn.messages)
                else:
                    self.cache.store(turn.messages, turn.scope, result.text, finish_reason=result.finish_reason)
        return result

    def finished(self, request_id: str, text: str) -> None:
        if self.active is not None and self.active.request_id == request_id:
            self.history.append({"role": "assistant", "content": text})
            self.active = None

    def cancel(self) -> bool:
        if self.active is not None and not self.active.done:
            self.active.cancel()
            return True
        return False

    # ---- read-only views (blocking: call from a worker thread) ----
    def session_budget(self) -> list[dict[str, Any]]:
        """The budget panel's rows for the current session, counted with the live engine's
        tokenizer; with caps set, each row carries the policy's before and after."""
        from sessions.budget import BudgetTokenizer, budget_rows, calls_from_session

        if self.session_id is None or self.store is None or self.engine is None:
            return []
        if self.recorder is not None:
            self.recorder.flush()  # the last reply's message is queued in the recorder
        sid, calls = calls_from_session(self.store, self.session_id)
        tok = BudgetTokenizer.from_engine(self.engine)
        cfg = self.budget_config
        return budget_rows(f"session {sid}", calls, lambda _model: tok, cfg, policy=any(cfg.caps.values()))

    def trace_with_findings(self, trace_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A stored trace as the inspector reads it, and every finding of every detector on it."""
        from sessions.traces.findings import detect
        from sessions.traces.store import get_trace, trace_from_dict

        assert self.store is not None
        trace = get_trace(self.store, trace_id)
        return trace, [f.to_dict() for f in detect(trace_from_dict(trace))]
