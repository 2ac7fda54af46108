"""The Textual app: a Chat tab (sessions | chat | latency + engine), Traces, Budget, Cache and Engine
tabs. Model, DuckDB and embedding work runs in thread workers; the chat stream is the ChatController's."""
from __future__ import annotations

import argparse
from typing import Any, Iterable

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from panels.budget_panel import BudgetPanel
from panels.cache_panel import CachePanel
from panels.chat_panel import ChatPanel
from panels.engine_panel import EnginePanel
from panels.latency_panel import LatencyPanel
from panels.messages import (SweepLoaded, BudgetComputed, CachedReply, EngineReady, PromptSubmitted, SessionLoaded, SessionSelected,
                             SessionsListed, TraceLoaded, TraceSelected, TracesListed)
from panels.prefix_panel import PrefixPanel
from panels.sessions_panel import SessionsPanel
from panels.spec_panel import SpecPanel
from panels.trace_inspector import TraceInspector
from panels.traces_panel import TracesPanel
from workbench.chat_controller import ChatController
from workbench.services import ChatService


class WorkbenchApp(App):
    chat: ChatController  # the chat stream; built in on_mount, once its panels exist

    TITLE = "inference-workbench"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("ctrl+n", "new_session", "New chat", id="new_session", tooltip="Start a new chat session"),
        Binding("escape", "cancel_reply", "Stop reply", id="cancel_reply", tooltip="Stop the reply being generated; what it wrote so far is kept"),
        Binding("ctrl+r", "refresh_sessions", "Refresh", id="refresh_sessions", tooltip="Reload the list of sessions from the database"),
        Binding("ctrl+y", "copy_reply", "Copy reply", id="copy_reply", tooltip="Copy the last reply to the clipboard"),
        Binding("f2", "focus_sessions", "Sessions", id="focus_sessions", tooltip="Move focus to the sessions list"),
        Binding("f3", "focus_prompt", "Prompt", id="focus_prompt", tooltip="Move focus to the prompt box"),
        Binding("f5", "tab_chat", "Chat", id="tab_chat", tooltip="Show the Chat tab: sessions, chat, latency and engine"),
        Binding("f6", "tab_traces", "Traces", id="tab_traces", tooltip="Show the Traces tab: imported agent traces and what the detectors found in them"),
        Binding("f7", "tab_budget", "Budget", id="tab_budget", tooltip="Show the Budget tab: the context window of each call of this chat"),
        Binding("f8", "tab_cache", "Cache", id="tab_cache", tooltip="Show the Cache tab: semantic cache hits, misses and guard refusals"),
        Binding("f9", "tab_engine", "Engine", id="tab_engine", tooltip="Show the Engine tab: speculation decisions and grid, prefix-cache hits and misses"),
        Binding("ctrl+q", "quit", "Quit", id="quit", tooltip="Quit; a reply in progress is stopped and kept", priority=True),
    ]

    def __init__(self, *, db_path: str | None = None, model: str = "smollm2-135m", backend: str = "auto",
                 config: dict[str, dict[str, Any]] | None = None) -> None:
        from workbench.config import load_config

        self.config_data = config or load_config()
        super().__init__()
        keymap = self.config_data.get("keymap") or {}
        if keymap:
            self.set_keymap(keymap)
        self.service = ChatService(db_path=db_path, model=model, backend=backend, config=self.config_data)
        self.engine_ready = False
        self.load_error: str | None = None
        self.stale: set[str] = {"tab-traces", "tab-budget", "tab-cache", "tab-engine"}  # tabs to refresh when shown

    # ---- layout ----
    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="tab-chat", id="tabs"):
            with TabPane("Chat", id="tab-chat"):
                with Horizontal(id="main"):
                    yield SessionsPanel(id="sessions-panel")
                    yield ChatPanel(id="chat-panel")
                    with Vertical(id="side"):
                        yield LatencyPanel(id="latency-panel")
                        yield EnginePanel(id="engine-panel")
            with TabPane("Traces", id="tab-traces"):
                yield TracesPanel(id="traces-panel")
                yield TraceInspector(id="trace-inspector")
            with TabPane("Budget", id="tab-budget"):
                yield Static("no chat yet: the budget of each call appears after a reply", id="budget-status")
                yield BudgetPanel(id="budget-panel")
            with TabPane("Cache", id="tab-cache"):
                yield CachePanel(id="cache-panel")
                yield Static("", id="cache-status")
            with TabPane("Engine", id="tab-engine"):
                with VerticalScroll(id="engine-tab-scroll"):
                    yield SpecPanel(id="spec-panel")
                    yield PrefixPanel(id="prefix-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.service.model} · loading"
        self.chat = ChatController(self.service, self.query_one(ChatPanel), self.query_one(LatencyPanel),
                                   self.query_one(EnginePanel), chat_shown=lambda: self.active_tab == "tab-chat")
        hz = float(self.config_data["ui"]["refresh_hz"])
        self.set_interval(1.0 / hz, self.drain_events)
        self.start_services()
        self.query_one(ChatPanel).focus()

    # ---- workers ----
    @work(thread=True, exclusive=True, group="startup", exit_on_error=False)
    def start_services(self) -> None:
        from engine.types import EngineError
        from sessions.errors import SessionsError

        try:
            self.service.open_store()
            self.call_from_thread(self.refresh_sessions)
            self.call_from_thread(self.mark_stale, "tab-traces", "tab-cache")  # a tab shown early is filled now
            engine = self.service.load_engine()
        except (EngineError, SessionsError) as e:
            # a user error (busy database, bad model path): leave with one line, like the CLI
            self.load_error = str(e)
            self.call_from_thread(self.exit, None, 2, f"workbench: error: {e}")
            return
        self.post_message(EngineReady(engine.model_name, engine.backend_name, engine.backend.context_window))

    @work(thread=True, exclusive=True, group="sessions", exit_on_error=False)
    def refresh_sessions(self) -> None:
        from sessions.queries import list_sessions

        if self.service.store is None:
            return
        if self.service.recorder is not None:
            self.service.recorder.flush()  # a session started a moment ago is still in its queue
        self.post_message(SessionsListed(list_sessions(self.service.store)))

    @work(thread=True, exclusive=True, group="open-session", exit_on_error=False)
    def load_session(self, session_id: str) -> None:
        from sessions.queries import get_session

        assert self.service.store is not None
        if self.service.recorder is not None:
            self.service.recorder.flush()
        self.post_message(SessionLoaded(get_session(self.service.store, session_id)))

    @work(thread=True, exclusive=True, group="submit", exit_on_error=False)
    def submit_prompt(self, text: str) -> None:
        """Lookup in the semantic cache (embeds the prompt), else submit and, once the reply is
        done, keep it in the cache. Tokens reach the UI through the event buffer, not from here."""
        turn = self.service.send(text)
        if turn.cached:
            h = turn.hit
            self.post_message(CachedReply(h.answer, h.similarity, h.entry_id, h.cached_prompt))
            return
        self.service.complete(turn)

    @work(thread=True, exclusive=True, group="traces", exit_on_error=False)
    def refresh_traces(self) -> None:
        from sessions.traces.store import list_traces

        if self.service.store is None:
            return
        self.post_message(TracesListed(list_traces(self.service.store)))

    @work(thread=True, exclusive=True, group="trace", exit_on_error=False)
    def load_trace(self, trace_id: str) -> None:
        self.post_message(TraceLoaded(*self.service.trace_with_findings(trace_id)))

    @work(thread=True, exclusive=True, group="budget", exit_on_error=False)
    def compute_budget(self) -> None:
        self.post_message(BudgetComputed(self.service.session_budget(), self.service.session_id))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            err = event.worker.error
            msg = f"{type(err).__name__}: {err}" if err else "unknown error"
            if event.worker.group == "startup":
                self.load_error = str(err)
                self.query_one(EnginePanel).set_header(f"could not start: {err}")
                self.sub_title = f"{self.service.model} · failed"
            elif event.worker.group == "submit":
                self.chat.submit_failed()
            self.notify(msg, title=f"{event.worker.group} failed", severity="error", timeout=8)

    # ---- messages ----
    def on_engine_ready(self, message: EngineReady) -> None:
        self.engine_ready = True
        self.sub_title = f"{message.model} · {message.backend}"
        panel = self.query_one(EnginePanel)
        panel.set_header(f"model {message.model}\nbackend {message.backend} · context {message.context_window}")
        if self.service.engine is not None:
            panel.set_stats(self.service.engine.stats())

    def on_sessions_listed(self, message: SessionsListed) -> None:
        self.query_one(SessionsPanel).set_rows(message.rows)

    @on(PromptSubmitted)
    def handle_prompt(self, message: PromptSubmitted) -> None:
        if not self.engine_ready:
            self.notify("the model is still loading" if not self.load_error else self.load_error, severity="warning")
            return
        if self.chat.awaiting_reply or self.chat.streaming:
            self.notify("a reply is still streaming; press esc to stop it", severity="warning")
            return
        self.chat.begin(message.text)
        self.submit_prompt(message.text)

    def on_session_selected(self, message: SessionSelected) -> None:
        if self.chat.streaming:
            self.notify("stop the current reply first (esc)", severity="warning")
            return
        self.load_session(message.session_id)

    def on_session_loaded(self, message: SessionLoaded) -> None:
        s = message.session
        self.service.reopen(s)
        self.chat.show_session(s)
        self.notify(f"session {s['id']} reopened: {len(s['messages'])} messages")
        self.mark_stale("tab-budget")

    def on_cached_reply(self, message: CachedReply) -> None:
        self.chat.cached(message)
        self.refresh_sessions()
        self.mark_stale("tab-budget", "tab-cache")

    # ---- the Traces, Budget and Cache tabs: refreshed when shown, never while hidden ----
    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id
        if pane == "tab-chat":
            self.chat.show_pending_steps()
        if pane in self.stale:
            self.stale.discard(pane)
            self.refresh_tab(pane)

    def mark_stale(self, *panes: str) -> None:
        """Refresh a tab now when it shows, else the next time it is shown."""
        for pane in panes:
            if self.active_tab == pane:
                self.refresh_tab(pane)
            else:
                self.stale.add(pane)

    def refresh_tab(self, pane: str) -> None:
        if pane == "tab-traces":
            self.refresh_traces()
        elif pane == "tab-budget":
            if self.engine_ready and self.service.session_id is not None:
                self.compute_budget()
        elif pane == "tab-cache":
            self.update_cache_panel()
        elif pane == "tab-engine":
            if self.service.engine is not None:
                self.query_one(SpecPanel).update_stats(self.service.engine.stats())
            self.query_one(PrefixPanel).update_reports(self.chat.prefix_rows[-20:])
            self.load_sweep()

    @work(thread=True, exclusive=True, group="sweep", exit_on_error=False)
    def load_sweep(self) -> None:
        from sessions.spec_sweep import load_sweep

        if self.service.store is not None:
            self.post_message(SweepLoaded(load_sweep(self.service.store)))

    def on_sweep_loaded(self, message: SweepLoaded) -> None:
        self.query_one(SpecPanel).update_grid(message.rows)

    @property
    def active_tab(self) -> str:
        return self.query_one("#tabs", TabbedContent).active

    def update_cache_panel(self) -> None:
        cache = self.service.cache
        status = self.query_one("#cache-status", Static)
        if cache is None:
            status.update("the semantic cache is off ([semantic_cache] enabled = false)")
            return
        self.query_one(CachePanel).update_stats(cache.stats())  # in-memory figures: no query
        temp = self.config_data["chat"]["temperature"]
        sampled = temp > 0 and not cache.config.cache_sampled
        status.update(f"chat temperature {temp}: " + (
            "sampled replies are not cached (set semantic_cache.cache_sampled or temperature 0)" if sampled
            else "greedy replies are cached and looked up before the engine is asked"))

    def on_traces_listed(self, message: TracesListed) -> None:
        self.query_one(TracesPanel).set_rows(message.rows)
        inspector = self.query_one(TraceInspector)
        if message.rows and inspector.trace is None:
            self.load_trace(message.rows[0]["id"])
        elif not message.rows:
            inspector.set_header("no traces imported: run `workbench import FILE...`")

    def on_trace_selected(self, message: TraceSelected) -> None:
        self.load_trace(message.trace_id)

    def on_trace_loaded(self, message: TraceLoaded) -> None:
        self.query_one(TraceInspector).set_trace(message.trace, message.findings)

    def on_budget_computed(self, message: BudgetComputed) -> None:
        if message.session_id != self.service.session_id:
            return  # computed for a session the user has left since
        cfg = self.service.budget_config
        caps = ", ".join(f"{k} {v}" for k, v in cfg.caps.items() if v) or "none"
        live = "applied to this chat" if cfg.apply_to_chat else "preview only (budget.apply_to_chat = false)"
        self.query_one("#budget-status", Static).update(
            f"session {message.session_id} · {len(message.rows)} call(s) · caps: {caps}" + (f" · policy {live}" if caps != "none" else ""))
        self.query_one(BudgetPanel).set_budget(message.rows)

    # ---- the stream, drained at ui.refresh_hz ----
    def drain_events(self) -> None:
        result = self.chat.drain()
        if result is None:
            return
        if result.finish_reason == "error":
            self.notify(result.error or "the request failed", severity="error")
        self.refresh_sessions()
        self.mark_stale("tab-budget", "tab-cache", "tab-engine")

    # ---- actions ----
    def action_new_session(self) -> None:
        if self.chat.streaming:
            self.notify("stop the current reply first (esc)", severity="warning")
            return
        self.service.new_session()
        self.query_one(BudgetPanel).set_budget([])
        self.query_one("#budget-status", Static).update("new chat: the budget of each call appears after a reply")
        self.chat.new_session()
        self.query_one(ChatPanel).focus()

    def action_cancel_reply(self) -> None:
        if self.service.cancel():
            self.notify("reply stopped; the partial text is kept")

    def action_refresh_sessions(self) -> None:
        self.refresh_sessions()

    def action_copy_reply(self) -> None:
        text = self.query_one(ChatPanel).last_reply
        if text:
            self.copy_to_clipboard(text)
            self.notify("last reply copied")

    def action_focus_sessions(self) -> None:
        self.show_tab("tab-chat", SessionsPanel)

    def action_focus_prompt(self) -> None:
        self.show_tab("tab-chat", ChatPanel)

    def show_tab(self, pane: str, focus: type[Widget] | None = None) -> None:
        # Blur first: a focused widget in the pane being hidden hands focus to a sibling in that
        # same pane, whose TabPane.Focused would switch straight back.
        self.screen.set_focus(None)
        self.query_one("#tabs", TabbedContent).active = pane
        if focus is not None:
            self.query_one(focus).focus()

    def action_tab_chat(self) -> None:
        self.show_tab("tab-chat", ChatPanel)

    def action_tab_traces(self) -> None:
        self.show_tab("tab-traces", TracesPanel)

    def action_tab_budget(self) -> None:
        self.show_tab("tab-budget", BudgetPanel)

    def action_tab_cache(self) -> None:
        self.show_tab("tab-cache")

    def action_tab_engine(self) -> None:
        self.show_tab("tab-engine")

    async def action_quit(self) -> None:
        self.service.cancel()
        self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for b in self.BINDINGS:
            if isinstance(b, Binding) and b.action != "quit":
                yield SystemCommand(b.description, b.tooltip or b.description, getattr(self, f"action_{b.action}"))


def run_app(args: argparse.Namespace) -> int:
    from workbench.context import backend_name, config_for, db_path, model_name

    app = WorkbenchApp(db_path=db_path(args), model=model_name(args), backend=backend_name(args), config=config_for(args))
    try:
        app.run()
    finally:
        app.service.close()
    return app.return_code or 0
