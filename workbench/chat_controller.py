"""The chat stream between the engine and the Chat tab: the event buffer drained on the app's timer
into the chat, latency and engine panels, and the figures of the reply and the session so far."""
from __future__ import annotations

import time
from typing import Any, Callable

from engine.types import RequestFinished, StepEvent, TokenEvent, percentile
from panels.chat_panel import ChatPanel
from panels.engine_panel import EnginePanel
from panels.latency_panel import LatencyPanel
from panels.messages import CachedReply
from workbench.services import ChatService


class ChatController:
    """Not a widget: the app builds it once its panels are mounted and calls `drain()` from its
    ui.refresh_hz timer; each drain updates the panels inside one batch_update, never per token.
    The engine panel is only updated while `chat_shown()`; its steps wait until then."""

    def __init__(self, service: ChatService, chat_panel: ChatPanel, latency_panel: LatencyPanel, engine_panel: EnginePanel,
                 *, chat_shown: Callable[[], bool]) -> None:
        self.service = service
        self.chat_panel = chat_panel
        self.latency_panel = latency_panel
        self.engine_panel = engine_panel
        self.chat_shown = chat_shown
        self.awaiting_reply = False  # a turn is with the cache or the engine
        self.last_result = None
        self.last_cached: CachedReply | None = None
        self.stream_started_ns: int | None = None
        self.first_token_seen = False
        self.last_token_ns: int | None = None
        self.session_ttft_ms: list[float] = []
        self.session_tokens = 0
        self.session_gen_s = 0.0
        self.pending_steps: list[StepEvent] = []  # for the engine panel while its tab is hidden
        self.prefix_rows: list[tuple[str, dict | None]] = []  # (request id, prefix report) of this chat

    @property
    def streaming(self) -> bool:
        """The engine is generating a reply now."""
        active = self.service.active
        return active is not None and not active.done

    # ---- a turn ----
    def begin(self, text: str) -> None:
        """The user's turn is shown and an empty reply waits for the first token."""
        self.awaiting_reply = True
        self.chat_panel.add_message("user", text)
        self.chat_panel.start_reply()
        self.latency_panel.reset_reply()
        self.stream_started_ns = time.perf_counter_ns()
        self.first_token_seen = False
        self.last_token_ns = None

    def submit_failed(self) -> None:
        """The submit worker failed before the engine got the turn: no reply will come."""
        if self.awaiting_reply and self.service.active is None:
            self.awaiting_reply = False
            self.stream_started_ns = None
            self.chat_panel.end_reply("failed")

    def cached(self, message: CachedReply) -> None:
        self.awaiting_reply = False
        self.stream_started_ns = None
        self.last_cached = message
        self.chat_panel.cached_reply(message.text, cached_note(message.similarity))
        self.latency_panel.set_ttft(None)

    # ---- the stream, drained at ui.refresh_hz ----
    def drain(self):
        """Everything the engine thread buffered since the last tick; returns the active request's
        Result when it finished in this batch, else None."""
        if not self.latency_panel.is_attached:
            return None  # the timer can fire once more while the app shuts down
        events = self.service.buffer.drain()
        if not events:
            if self.stream_started_ns is not None and not self.first_token_seen:
                self.latency_panel.waiting((time.perf_counter_ns() - self.stream_started_ns) / 1e6)
            return None
        active = self.service.active
        rid = active.request_id if active is not None else None
        text: list[str] = []
        itl: list[float] = []
        steps: list[StepEvent] = []
        finished = None
        with self.chat_panel.app.batch_update():
            for ev in events:
                if isinstance(ev, TokenEvent) and ev.request_id == rid:
                    if ev.token_ids:
                        if self.last_token_ns is not None:
                            itl.append((ev.t_ns - self.last_token_ns) / 1e6)
                        elif not self.first_token_seen:
                            self.first_token_seen = True
                            self.latency_panel.set_ttft((ev.t_ns - active.metrics.arrival_ns) / 1e6)
                        self.last_token_ns = ev.t_ns
                    text.append(ev.text)
                elif isinstance(ev, StepEvent):
                    steps.append(ev)
                elif isinstance(ev, RequestFinished) and ev.request_id == rid:
                    finished = ev.result
            if text:
                self.chat_panel.append_reply("".join(text))
            self.latency_panel.add_itl(itl)
            if steps:
                if self.chat_shown():
                    self.engine_panel.add_steps(steps)
                else:  # caught up when the Chat tab shows again
                    self.pending_steps = (self.pending_steps + steps)[-120:]
            if finished is not None:
                self._reply_done(finished)
        return finished

    def _reply_done(self, result) -> None:
        self.awaiting_reply = False
        m = result.metrics.to_dict()
        self.last_result = result
        self.service.finished(result.request_id, result.text)
        self.chat_panel.end_reply(reply_note(m["ttft_ms"], m["output_tokens"], result.finish_reason, m["output_tokens_per_s"]))
        self.latency_panel.set_ttft(m["ttft_ms"])
        if m["ttft_ms"] is not None:
            self.session_ttft_ms.append(m["ttft_ms"])
        if result.metrics.output_tokens > 1 and result.metrics.token_times_ns:
            self.session_tokens += result.metrics.output_tokens - 1
            self.session_gen_s += (result.metrics.token_times_ns[-1] - result.metrics.first_token_ns) / 1e9
        self.latency_panel.set_session_stats(
            percentile(self.session_ttft_ms, 50), percentile(self.session_ttft_ms, 95),
            self.session_tokens / self.session_gen_s if self.session_gen_s else None, len(self.session_ttft_ms),
        )
        self.stream_started_ns = None
        if self.service.engine is not None:
            self.engine_panel.set_stats(self.service.engine.stats())
        self.prefix_rows.append((result.request_id, getattr(result.metrics, "prefix_report", None)))

    def show_pending_steps(self) -> None:
        """The Chat tab shows again: the engine panel catches up on the steps it missed."""
        if self.pending_steps:
            self.engine_panel.add_steps(self.pending_steps)
            self.pending_steps = []

    # ---- sessions ----
    def new_session(self) -> None:
        self.chat_panel.clear()
        self.latency_panel.reset_reply()
        self.session_ttft_ms, self.session_tokens, self.session_gen_s = [], 0, 0.0
        self.latency_panel.set_session_stats(None, None, None, 0)

    def show_session(self, s: dict[str, Any]) -> None:
        """A stored session (sessions.queries.get_session) in the chat and latency panels."""
        from sessions.queries import session_summary

        self.chat_panel.clear()
        reqs = {r["id"]: r for r in s["requests"]}
        for m in s["messages"]:
            if m["role"] == "system":
                continue
            note = ""
            r = reqs.get(m.get("request_id") or "")
            if r is not None:
                note = reply_note(r.get("ttft_ms"), r.get("output_tokens"), r.get("status"))
            cached = m.get("cache_entry_id") is not None
            if cached:
                note = cached_note(m.get("cache_similarity"))
            self.chat_panel.add_message(m["role"], m["content"], note=note, cached=cached)
        self.latency_panel.reset_reply()
        if s["requests"]:
            last = s["requests"][-1]
            self.latency_panel.set_ttft(last.get("ttft_ms"))
            self.latency_panel.add_itl(last.get("itl_ms") or [])
        self.session_ttft_ms = [r["ttft_ms"] for r in s["requests"] if r.get("ttft_ms") is not None]
        summary = session_summary(s)
        self.latency_panel.set_session_stats(summary["p50_ttft_ms"], summary["p95_ttft_ms"], summary["output_tokens_per_s"], summary["requests"])


def cached_note(similarity: float | None) -> str:
    return "cached" + (f" · similarity {similarity:.3f}" if similarity is not None else "") + " · not generated"


def reply_note(ttft_ms, output_tokens, status, tps=None) -> str:
    parts = []
    if ttft_ms is not None:
        parts.append(f"ttft {ttft_ms:.0f} ms")
    if output_tokens:
        parts.append(f"{output_tokens} tokens")
    if tps:
        parts.append(f"{tps:.1f} tok/s")
    if status and status not in ("stop", "finished", "length"):
        parts.append(status)
    return " · ".join(parts)
