"""The Textual app: a Chat tab (sessions | chat | latency + engine), Traces (with replay), Budget,
Cache, Engine and Runs (bench runs, started, charted, compared, exported) tabs. Model, DuckDB and
embedding work runs in thread workers that post messages; the chat stream is the ChatController's."""
from __future__ import annotations

import argparse
import functools
import threading
from typing import Any, Callable, Iterable

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Input, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from panels.budget_panel import BudgetPanel
from panels.cache_panel import CachePanel
from panels.chat_panel import ChatPanel
from panels.engine_panel import EnginePanel
from panels.latency_panel import LatencyPanel
from panels.messages import (BenchFinished, BenchProgress, BenchRequested, BudgetComputed, CachedReply, EngineReady,
                             LatencyLoaded, PromptSubmitted, ReplayFinished, ReplayProgress, ReportExported,
                             RunDetailLoaded, RunSelected, RunsCompared, RunsListed, SessionLoaded, SessionSelected,
                             SessionsListed, SweepLoaded, TraceLoaded, TraceSelected, TracesListed)
from panels.prefix_panel import PrefixPanel
from panels.replay_panel import ReplayPanel
from panels.runs_panel import RunsPanel
from panels.sessions_panel import SessionsPanel
from panels.spec_panel import SpecPanel
from panels.trace_inspector import TraceInspector
from panels.traces_panel import TracesPanel
from workbench.chat_controller import ChatController
from workbench.services import ChatService

# the workloads the Runs tab's form offers: the built-in ones that need no dataset file or tokenizer options
APP_WORKLOADS = ("chat", "mixed", "code-edit", "json", "trace")


def while_running(handler: Callable) -> Callable:
    """A message handler that does nothing once the app is shutting down: a worker can post its
    result after the app has begun to exit, when the widgets it would update are gone."""

    @functools.wraps(handler)
    def guarded(self, *args: Any, **kwargs: Any) -> Any:
        if not self.is_running:
            return None
        try:
            return handler(self, *args, **kwargs)
        except NoMatches:
            if self.is_running and self.screen_stack and self.is_mounted(self.screen):
                raise
            return None

    return guarded


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
        Binding("f4", "tab_runs", "Runs", id="tab_runs", tooltip="Show the Runs tab: every bench run with its percentiles, charts and SLO verdict; start a new one"),
        Binding("ctrl+t", "replay_trace", "Replay trace", id="replay_trace", show=False,
                tooltip="Replay the selected trace's LLM calls on the loaded engine and compare them with the original, call by call"),
        Binding("ctrl+g", "trace_budget", "Trace budget", id="trace_budget", show=False,
                tooltip="Open the selected trace's context budget (per call, growth, warnings) in the Budget tab"),
        Binding("ctrl+o", "start_bench", "Start bench", id="start_bench", show=False,
                tooltip="Start a bench run with the Runs tab's form: workload, requests, concurrency or rate, backend"),
        Binding("f12", "stop_job", "Stop replay/bench", id="stop_job", show=False,
                tooltip="Stop the replay or bench run in progress; what finished is kept"),
        Binding("ctrl+f", "mark_run", "Mark run", id="mark_run", show=False,
                tooltip="Mark the selected run as the base of a comparison (again: unmark it)"),
        Binding("ctrl+l", "compare_runs", "Compare runs", id="compare_runs", show=False,
                tooltip="Compare the selected run with the marked one: deltas and a Mann-Whitney verdict per metric"),
        Binding("f10", "export_run", "Export run", id="export_run", show=False,
                tooltip="Write the selected run's report (HTML, Markdown, JSON or CSV) to a path you type"),
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
        self.stale: set[str] = {"tab-traces", "tab-budget", "tab-cache", "tab-engine", "tab-runs"}  # tabs to refresh when shown
        self.budget_ref: str | None = None  # the trace or session the Budget tab shows; None: this chat
        self.replay_stop = threading.Event()  # set to stop the replay in progress
        self.bench_stop = threading.Event()  # set to stop the bench run in progress
        self.replaying: str | None = None  # the trace being replayed
        self.benching = False
        self.latency_errors: set[str] = set()

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
                yield ReplayPanel(id="replay-panel")
            with TabPane("Budget", id="tab-budget"):
                with Horizontal(id="budget-bar"):
                    yield Input(placeholder="trace or session id (enter); empty: this chat", id="budget-source")
                    yield Static("no chat yet: the budget of each call appears after a reply", id="budget-status")
                yield BudgetPanel(id="budget-panel")
            with TabPane("Cache", id="tab-cache"):
                yield CachePanel(id="cache-panel")
                yield Static("", id="cache-status")
            with TabPane("Engine", id="tab-engine"):
                with VerticalScroll(id="engine-tab-scroll"):
                    yield SpecPanel(id="spec-panel")
                    yield PrefixPanel(id="prefix-panel")
            with TabPane("Runs", id="tab-runs"):
                yield RunsPanel(workloads=APP_WORKLOADS, id="runs-panel")
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
        self.post_message(LatencyLoaded(trace_id, self._latency(trace_id)))

    def _latency(self, ref: str) -> Any:
        """The "where the p95 goes" report, or None: the analysis is optional, and its failure on
        one run or trace must not take the rest of the tab with it."""
        try:
            return self.service.latency(ref)
        except Exception as e:  # noqa: BLE001 - shown once, not raised
            msg = f"{type(e).__name__}: {e}"
            if msg not in self.latency_errors:  # not one notification per trace selected
                self.latency_errors.add(msg)
                self.call_from_thread(self.notify, f"latency report of {ref}: {msg}", severity="warning")
            return None

    @work(thread=True, exclusive=True, group="budget", exit_on_error=False)
    def compute_budget(self) -> None:
        self.post_message(BudgetComputed(self.service.session_budget(), self.service.session_id))

    @work(thread=True, exclusive=True, group="budget", exit_on_error=False)
    def compute_budget_of(self, ref: str) -> None:
        from sessions.errors import SessionsError

        try:
            source, rows = self.service.budget_of(ref)
        except SessionsError as e:
            self.call_from_thread(self.notify, str(e), title="budget", severity="error")
            return
        self.post_message(BudgetComputed(rows, None, source))

    # ---- replay (the Traces tab) ----
    @work(thread=True, exclusive=True, group="replay", exit_on_error=False)
    def replay_worker(self, trace_id: str, stop: threading.Event) -> None:
        from engine.types import EngineError
        from sessions.errors import SessionsError

        try:
            total = self.service.trace_llm_calls(trace_id)
            self.post_message(ReplayProgress(trace_id, None, 0, total))
            done = [0]

            def on_step(step) -> None:
                done[0] += 1
                self.post_message(ReplayProgress(trace_id, step.to_dict(), done[0], total))

            result = self.service.replay(trace_id, on_step=on_step, stop=stop)
        except (EngineError, SessionsError) as e:
            self.post_message(ReplayFinished(trace_id, None, str(e)))
            return
        self.post_message(ReplayFinished(trace_id, result))
        self.post_message(LatencyLoaded(trace_id, self._latency(trace_id)))

    # ---- bench runs (the Runs tab) ----
    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def refresh_runs(self) -> None:
        if self.service.store is not None:
            self.post_message(RunsListed(self.service.runs()))

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def load_run(self, run_id: str) -> None:
        report, ttft, itl, timeline = self.service.run_detail(run_id)
        self.post_message(RunDetailLoaded(run_id, report, ttft, itl, timeline))
        self.post_message(LatencyLoaded(run_id, self._latency(run_id)))

    @work(thread=True, exclusive=True, group="bench", exit_on_error=False)
    def bench_worker(self, options: dict[str, Any], stop: threading.Event) -> None:
        from engine.types import EngineError
        from sessions.errors import SessionsError
        from workbench.cli import CliError

        def progress(finished: int, submitted: int, total: int, live: dict[str, Any]) -> None:
            self.post_message(BenchProgress(finished, submitted, total, live))

        try:
            outcome = self.service.bench(options, on_progress=progress, stop=stop)
        except (EngineError, SessionsError, CliError) as e:
            self.post_message(BenchFinished(None, "error", str(e)))
            return
        self.post_message(BenchFinished(outcome.run_id, outcome.status))

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def compare_worker(self, base: str, other: str) -> None:
        self.post_message(RunsCompared(base, other, self.service.compare_runs(base, other)))

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def export_worker(self, run_id: str, path: str, fmt: str) -> None:
        from sessions.errors import SessionsError

        try:
            target, fmt, size = self.service.export_run(run_id, path, fmt)
        except OSError as e:
            where = e.filename or path
            self.post_message(ReportExported(run_id, str(where), fmt, error=f"cannot write {where}: {e.strerror or e}"))
            return
        except SessionsError as e:
            self.post_message(ReportExported(run_id, path, fmt, error=str(e)))
            return
        self.post_message(ReportExported(run_id, target, fmt, size))

    @while_running
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
            elif event.worker.group == "bench":  # the form can start another run
                self.post_message(BenchFinished(None, "error", msg))
                return
            elif event.worker.group == "replay" and self.replaying is not None:
                self.post_message(ReplayFinished(self.replaying, None, msg))
                return
            self.notify(msg, title=f"{event.worker.group} failed", severity="error", timeout=8)

    # ---- messages ----
    @while_running
    def on_engine_ready(self, message: EngineReady) -> None:
        self.engine_ready = True
        self.sub_title = f"{message.model} · {message.backend}"
        panel = self.query_one(EnginePanel)
        panel.set_header(f"model {message.model}\nbackend {message.backend} · context {message.context_window}")
        if self.service.engine is not None:
            panel.set_stats(self.service.engine.stats())

    @while_running
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

    @while_running
    def on_session_loaded(self, message: SessionLoaded) -> None:
        s = message.session
        self.service.reopen(s)
        self.chat.show_session(s)
        self.notify(f"session {s['id']} reopened: {len(s['messages'])} messages")
        self.mark_stale("tab-budget")

    @while_running
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
            if self.engine_ready and self.budget_ref is not None:
                self.compute_budget_of(self.budget_ref)
            elif self.engine_ready and self.service.session_id is not None:
                self.compute_budget()
        elif pane == "tab-runs":
            self.refresh_runs()
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

    @while_running
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

    @while_running
    def on_traces_listed(self, message: TracesListed) -> None:
        self.query_one(TracesPanel).set_rows(message.rows)
        inspector = self.query_one(TraceInspector)
        if message.rows and inspector.trace is None:
            self.load_trace(message.rows[0]["id"])
        elif not message.rows:
            inspector.set_header("no traces imported: run `workbench import FILE...`")

    def on_trace_selected(self, message: TraceSelected) -> None:
        self.load_trace(message.trace_id)

    @while_running
    def on_trace_loaded(self, message: TraceLoaded) -> None:
        self.query_one(TraceInspector).set_trace(message.trace, message.findings)

    @while_running
    def on_latency_loaded(self, message: LatencyLoaded) -> None:
        inspector = self.query_one(TraceInspector)
        if inspector.trace is not None and inspector.trace.get("id") == message.ref:
            self.query_one(ReplayPanel).set_latency(message.report)
        runs = self.query_one(RunsPanel)
        if runs.detail_id == message.ref:
            runs.set_latency(message.report)

    @while_running
    def on_replay_progress(self, message: ReplayProgress) -> None:
        panel = self.query_one(ReplayPanel)
        if message.step is None:
            panel.start(message.trace_id, message.total)
        else:
            panel.add_step(message.step, message.done, message.total)

    @while_running
    def on_replay_finished(self, message: ReplayFinished) -> None:
        self.replaying = None
        self.query_one(ReplayPanel).finish(message.result, message.error)
        if message.result is not None:
            how = "stopped after" if message.result.get("stopped") else "replayed"
            self.notify(f"trace {message.trace_id} {how} {len(message.result['steps'])} call(s): "
                        f"session {message.result['session_id']}")
            self.refresh_sessions()

    # ---- the Budget tab: any session or trace ----
    @on(Input.Submitted, "#budget-source")
    def budget_source_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.open_budget(event.value.strip() or None)

    def open_budget(self, ref: str | None) -> None:
        """Show the budget of `ref` (a trace or session id, or a unique prefix); None: this chat's."""
        self.budget_ref = ref
        try:
            self.query_one("#budget-source", Input).value = ref or ""
        except NoMatches:
            return
        if ref is None:
            self.query_one(BudgetPanel).set_budget([])
            self.query_one("#budget-status", Static).update("this chat: the budget of each call appears after a reply")
        else:
            self.query_one("#budget-status", Static).update(f"counting {ref} ...")
        self.mark_stale("tab-budget")

    # ---- the Runs tab ----
    @while_running
    def on_runs_listed(self, message: RunsListed) -> None:
        panel = self.query_one(RunsPanel)
        panel.set_rows(message.rows)
        if message.rows and panel.detail_id is None:
            self.load_run(message.rows[0]["id"])

    def on_run_selected(self, message: RunSelected) -> None:
        self.load_run(message.run_id)

    @while_running
    def on_run_detail_loaded(self, message: RunDetailLoaded) -> None:
        self.query_one(RunsPanel).show_detail(message.run_id, message.report, message.ttft_ms, message.itl_ms,
                                              message.timeline)

    def on_bench_requested(self, message: BenchRequested) -> None:
        opts = message.options
        if opts.get("backend") == "local" and not self.engine_ready:
            self.notify("the model is still loading" if not self.load_error else self.load_error, severity="warning")
            return
        if self.benching:
            self.notify("a bench run is in progress; f12 stops it", severity="warning")
            return
        if opts.get("workload") == "trace":  # replay the trace selected in the Traces tab, when there is one
            trace = self.query_one(TraceInspector).trace
            opts = {**opts, "trace": trace["id"] if trace is not None else None}
        self.benching = True
        self.bench_stop = threading.Event()
        where = opts.get("base_url") or f"{self.service.model} (this engine)"
        self.query_one(RunsPanel).bench_started(opts["requests"], where)
        self.bench_worker(opts, self.bench_stop)

    @while_running
    def on_bench_progress(self, message: BenchProgress) -> None:
        self.query_one(RunsPanel).bench_progress(message.finished, message.submitted, message.total, message.live)

    @while_running
    def on_bench_finished(self, message: BenchFinished) -> None:
        self.benching = False
        panel = self.query_one(RunsPanel)
        panel.bench_finished(message.run_id, message.status, message.error)
        if message.error:
            self.notify(message.error, title="bench failed", severity="error", timeout=8)
            return
        self.notify(f"bench run {message.run_id} {message.status}")
        panel.detail_id = message.run_id
        self.refresh_runs()
        self.load_run(message.run_id)
        self.refresh_sessions()

    @while_running
    def on_runs_compared(self, message: RunsCompared) -> None:
        self.query_one(RunsPanel).show_compare(message.base_id, message.other_id, message.compare)

    @while_running
    def on_report_exported(self, message: ReportExported) -> None:
        from rich.text import Text

        panel = self.query_one(RunsPanel)
        if message.error:
            panel.show_export(Text(message.error, style="bold red"))
            self.notify(message.error, title="export failed", severity="error", timeout=8)
            return
        panel.show_export(f"run {message.run_id} written to {message.path} ({message.fmt}, {message.size} bytes)")
        self.notify(f"report written to {message.path}")

    @while_running
    def on_budget_computed(self, message: BudgetComputed) -> None:
        if message.source is not None:
            if self.budget_ref is None:
                return  # the user went back to this chat's budget meanwhile
            self.query_one("#budget-status", Static).update(f"{message.source} · {len(message.rows)} call(s)")
            self.query_one(BudgetPanel).set_budget(message.rows)
            return
        if self.budget_ref is not None or message.session_id != self.service.session_id:
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
        self.budget_ref = None
        self.query_one("#budget-source", Input).value = ""
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

    def action_tab_runs(self) -> None:
        self.show_tab("tab-runs", RunsPanel)

    def action_replay_trace(self) -> None:
        trace = self.query_one(TraceInspector).trace
        if trace is None:
            self.notify("no trace selected: pick one in the Traces tab (F6)", severity="warning")
            return
        if not self.engine_ready:
            self.notify("the model is still loading" if not self.load_error else self.load_error, severity="warning")
            return
        if self.replaying is not None:
            self.notify(f"trace {self.replaying} is being replayed; f12 stops it", severity="warning")
            return
        self.replaying = trace["id"]
        self.replay_stop = threading.Event()
        self.show_tab("tab-traces")
        self.replay_worker(trace["id"], self.replay_stop)

    def action_trace_budget(self) -> None:
        trace = self.query_one(TraceInspector).trace
        if trace is None:
            self.notify("no trace selected: pick one in the Traces tab (F6)", severity="warning")
            return
        self.show_tab("tab-budget", BudgetPanel)
        self.open_budget(trace["id"])

    def action_start_bench(self) -> None:
        self.show_tab("tab-runs")
        self.query_one(RunsPanel).request_bench()

    def action_stop_job(self) -> None:
        if self.replaying is None and not self.benching:
            self.notify("no replay or bench run is in progress")
            return
        self.replay_stop.set()
        self.bench_stop.set()
        self.notify("stopping; what finished is kept")

    def action_mark_run(self) -> None:
        marked = self.query_one(RunsPanel).toggle_mark()
        self.notify(f"run {marked} marked: select another and press ctrl+l to compare" if marked else "no run marked")

    def action_compare_runs(self) -> None:
        panel = self.query_one(RunsPanel)
        other = panel.current_id
        if panel.marked is None or other is None or other == panel.marked:
            self.notify("mark a run (ctrl+f), then select another to compare it with", severity="warning")
            return
        panel.show_compare_text(f"comparing {other} with {panel.marked} ...")
        self.compare_worker(panel.marked, other)

    def action_export_run(self) -> None:
        from workbench.export_screen import ExportScreen

        panel = self.query_one(RunsPanel)
        run_id = panel.detail_id or panel.current_id
        if run_id is None:
            self.notify("no run to export: start one (ctrl+o) or select one in the Runs tab (F4)", severity="warning")
            return

        def chosen(answer: tuple[str, str] | None) -> None:
            if answer is not None:
                panel.show_export(f"writing {answer[0]} ...")
                self.export_worker(run_id, answer[0], answer[1])

        self.push_screen(ExportScreen(run_id, f"report-{run_id}.html"), chosen)

    async def action_quit(self) -> None:
        self.service.cancel()
        self.replay_stop.set()  # a replay or bench run stops and keeps what finished
        self.bench_stop.set()
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
