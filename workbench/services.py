"""Wires engine + recorder for the app: owns the store, the engine, the current session's
history, and a buffer the engine thread appends to and the UI drains on a timer."""
from __future__ import annotations

import threading
from collections import deque
from typing import Any

from engine.types import EngineEvent


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
        self._lock = threading.Lock()

    # ---- lifecycle (blocking; call from worker threads) ----
    def open_store(self) -> None:
        from sessions.recorder import Recorder
        from sessions.store import Store

        self.store = Store(self.db_path)
        self.recorder = Recorder(self.store)

    def load_engine(self):
        from engine import Engine

        cfg = self.config["engine"]
        options: dict[str, Any] = {}
        if self.backend in ("auto", "llamacpp"):
            options["n_ctx"] = cfg["n_ctx"]
            if cfg["threads"]:
                options["n_threads"] = cfg["threads"]
        engine = Engine.load(model=self.model, backend=self.backend, **options)
        engine.add_listener(self.buffer.on_event)
        if self.recorder is not None:
            engine.add_listener(self.recorder.on_event)
        self.engine = engine
        return engine

    def close(self) -> None:
        if self.active is not None and not self.active.done:
            self.active.cancel()
            try:
                self.active.result(timeout=10)
            except TimeoutError:
                pass
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
            self.session_id = self.recorder.new_session(
                "chat", model=self.engine.model_name, backend=self.engine.backend_name,
                title=first_prompt.strip().splitlines()[0][:80], system_prompt=system or None,
            )
            self.recorder.step_session_id = self.session_id
            if system:
                self.history.append({"role": "system", "content": system})
                self.recorder.add_message(self.session_id, "system", system)
        return self.session_id

    def reopen(self, session: dict[str, Any]) -> None:
        """Continue a stored session: its messages become the history of the next turn."""
        assert self.recorder is not None
        self.session_id = session["id"]
        self.history = [{"role": m["role"], "content": m["content"]} for m in session["messages"]]
        self.recorder.resume_session(session["id"])
        self.recorder.step_session_id = session["id"]

    # ---- turns ----
    def send(self, text: str):
        from engine import SamplingParams

        assert self.engine is not None and self.recorder is not None
        c = self.config["chat"]
        sid = self._ensure_session(text)
        self.history.append({"role": "user", "content": text})
        self.recorder.add_message(sid, "user", text)
        params = SamplingParams(max_tokens=c["max_tokens"], temperature=c["temperature"], top_p=c["top_p"])
        handle = self.engine.submit(list(self.history), params, tags={"session_id": sid, "assistant_message": True})
        self.active = handle
        return handle

    def finished(self, request_id: str, text: str) -> None:
        if self.active is not None and self.active.request_id == request_id:
            self.history.append({"role": "assistant", "content": text})
            self.active = None

    def cancel(self) -> bool:
        if self.active is not None and not self.active.done:
            self.active.cancel()
            return True
        return False
