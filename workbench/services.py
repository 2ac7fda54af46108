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

    # ---- the Traces tab: replay, budget, latency (blocking: call from a worker thread) ----
    def trace_llm_calls(self, trace_id: str) -> int:
        from sessions.traces.store import load_trace

        assert self.store is not None
        return sum(1 for s in load_trace(self.store, trace_id).spans if s.kind == "llm")

    def replay(self, trace_id: str, *, on_step: Callable[[Any], None] | None = None,
               stop: threading.Event | None = None) -> dict[str, Any]:
        """`workbench replay` on the loaded engine, recorded by the app's own recorder (already an
        engine listener: a second one would write each request twice). Returns ReplayResult.to_dict()."""
        from sessions.traces.replay import replay_trace
        from sessions.traces.store import load_trace

        assert self.store is not None and self.engine is not None
        trace = load_trace(self.store, trace_id)
        step_sid = self.recorder.step_session_id if self.recorder is not None else None
        try:
            return replay_trace(self.store, self.engine, trace, on_step=on_step, recorder=self.recorder, stop=stop).to_dict()
        finally:
            if self.recorder is not None:
                self.recorder.step_session_id = step_sid

    def budget_of(self, ref: str) -> tuple[str, list[dict[str, Any]]]:
        """The budget rows of any stored trace or session (an id or a unique prefix), as `workbench
        budget REF --json` gives them. Counted with the loaded engine's tokenizer; a call made by
        another model is counted with it as a stand-in, and says so."""
        from sessions.budget import BudgetTokenizer, budget_rows, calls_from_session, calls_from_trace
        from sessions.store import StoreError
        from sessions.traces.store import load_trace, resolve_trace_id

        assert self.store is not None and self.engine is not None
        if self.recorder is not None:
            self.recorder.flush()
        try:
            tid = resolve_trace_id(self.store, ref)
        except StoreError as e:
            if "ambiguous" in str(e):
                raise
            sid, calls = calls_from_session(self.store, ref)
            source = f"session {sid}"
        else:
            calls, source = calls_from_trace(load_trace(self.store, tid)), f"trace {tid}"
        own = BudgetTokenizer.from_engine(self.engine)
        toks: dict[str | None, BudgetTokenizer] = {}

        def tokenizer_for(model: str | None) -> BudgetTokenizer:
            if model is None and source.startswith("session") or model == self.engine.model_name:
                return own
            if model not in toks:
                toks[model] = BudgetTokenizer.from_engine(self.engine, stands_in_for=model or "unknown model")
            return toks[model]

        cfg = self.budget_config
        return source, budget_rows(source, calls, tokenizer_for, cfg, policy=any(cfg.caps.values()))

    def latency(self, ref: str) -> Any:
        """sessions.latency's "where the p95 goes" report of a run, session or trace."""
        from sessions.latency import latency_report

        assert self.store is not None
        return latency_report(self.store, ref, slo=self.config.get("slo") or None)

    # ---- the Runs tab (blocking: call from a worker thread) ----
    @property
    def slo(self) -> dict[str, float]:
        return slo_limits(self.config)

    def runs(self) -> list[dict[str, Any]]:
        """Every bench run (sessions.bench.list_runs) with `slo_passed`: the config's summary SLOs
        judged on the stored summary (None when none is set or the run has no summary yet)."""
        from sessions.bench import list_runs
        from sessions.metrics import REQUEST_SLO_KEYS, check_slo

        assert self.store is not None
        if self.recorder is not None:
            self.recorder.flush()
        limits = {k: v for k, v in self.slo.items() if k not in REQUEST_SLO_KEYS}
        rows = list_runs(self.store)
        for r in rows:
            summary = r.pop("summary")
            r["slo_passed"] = (all(c.passed for c in check_slo([], summary, limits))
                               if limits and summary else None)
        return rows

    def run_detail(self, run_id: str) -> tuple[dict[str, Any], list[float], list[float], list[tuple[float, float | None, float]]]:
        """A run's report with the config's SLOs checked, and what its charts draw (ms)."""
        from sessions.report import load_run, report_from

        assert self.store is not None
        data = load_run(self.store, run_id)
        report = report_from(data, self.slo or None)
        done = [r for r in data.records if r.completed]
        t0 = min((r.arrival_ns for r in data.records), default=0)
        rows = [((r.arrival_ns - t0) / 1e6, None if r.first_token_ns is None else (r.first_token_ns - t0) / 1e6,
                 (r.finished_ns - t0) / 1e6) for r in data.records if r.finished_ns is not None]
        for k in ("ttfts", "itls", "input_lens", "output_lens", "errors"):
            report.pop(k, None)  # per-request arrays: the charts get them in ms below
        return report, [r.ttft_ms for r in done], [x for r in done for x in r.itl_ms], rows

    def compare_runs(self, base: str, other: str) -> dict[str, Any]:
        """`workbench report BASE --compare OTHER`'s judgement: deltas and a Mann-Whitney verdict per metric."""
        from sessions.report import build_report

        assert self.store is not None
        return build_report(self.store, base, self.slo or None, compare_to=other)["compare"]

    def export_run(self, run_id: str, path: str, fmt: str | None = None) -> tuple[str, str, int]:
        """Write the run's report as `workbench report RUN --out PATH` would; returns the absolute path,
        the format and the bytes written. A path that cannot be written raises OSError."""
        import os

        from sessions.report import write_report
        from workbench.commands.report_cmd import format_for

        assert self.store is not None
        target = os.path.abspath(os.path.expanduser(path))
        fmt = format_for(target, None if fmt in (None, "", "auto") else fmt)
        text, _ = write_report(self.store, run_id, fmt, slo=self.slo or None)
        if os.path.isdir(target):
            raise IsADirectoryError(21, "is a directory", target)
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
        return target, fmt, len(text.encode("utf-8"))

    def bench(self, options: dict[str, Any], *, on_progress: Callable[[int, int, int, dict[str, Any]], None],
              stop: threading.Event):
        """`workbench bench` from the Runs tab's form, on the loaded engine or on a remote
        OpenAI-compatible server. Setting `stop` acts as Ctrl+C does on the command line: what is in
        flight is cancelled, every finished request is kept, the run is "interrupted"."""
        from sessions.bench import run_bench
        from workbench.commands.bench_cmd import bench_config, remote_engine

        assert self.store is not None
        opts = dict(options)
        backend = opts.pop("backend", "local")
        cfg = bench_config(**opts)
        if backend == "openai":
            engine, recorder = remote_engine(self.config, cfg.base_url), None
        else:
            assert self.engine is not None
            engine, recorder = self.engine, self.recorder  # already listening to this engine
        live = BenchLive()
        engine.add_listener(live.on_event)
        step_sid = self.recorder.step_session_id if self.recorder is not None else None

        def progress(finished: int, submitted: int, total: int) -> None:
            if stop.is_set():
                raise KeyboardInterrupt  # run_bench's own way to stop and keep what finished
            if live.due(finished):
                on_progress(finished, submitted, total, live.snapshot())

        try:
            return run_bench(engine, self.store, cfg, progress=progress, recorder=recorder)
        finally:
            engine.remove_listener(live.on_event)
            if self.recorder is not None:
                self.recorder.step_session_id = step_sid
            if engine is not self.engine:
                engine.close()


class BenchLive:
    """Engine listener for a bench run in progress: each finished request's TTFT and TPOT, so the
    Runs tab shows percentiles while the run goes. `due()` limits updates to a few a second."""

    def __init__(self, every_s: float = 0.25) -> None:
        import time

        self._clock = time.perf_counter
        self.started = self._clock()
        self.every_s = every_s
        self._last = 0.0
        self._last_finished = -1
        self.ttft_ms: list[float] = []
        self.tpot_ms: list[float] = []
        self.output_tokens = 0
        self._lock = threading.Lock()

    def on_event(self, ev: EngineEvent) -> None:
        from engine.types import RequestFinished

        if isinstance(ev, RequestFinished) and ev.tags.get("bench_run"):
            d = ev.result.metrics.to_dict()
            with self._lock:
                if d.get("ttft_ms") is not None:
                    self.ttft_ms.append(d["ttft_ms"])
                if d.get("tpot_ms") is not None:
                    self.tpot_ms.append(d["tpot_ms"])
                self.output_tokens += d.get("output_tokens") or 0

    def due(self, finished: int) -> bool:
        """At most one update per `every_s`, and always one when a request has finished since."""
        now = self._clock()
        if now - self._last < self.every_s and (finished == self._last_finished or now - self._last < 0.05):
            return False
        self._last, self._last_finished = now, finished
        return True

    def snapshot(self) -> dict[str, Any]:
        from engine.types import percentile

        with self._lock:
            ttft, tpot, out = list(self.ttft_ms), list(self.tpot_ms), self.output_tokens
        elapsed = self._clock() - self.started
        return {"p50_ttft_ms": percentile(ttft, 50), "p95_ttft_ms": percentile(ttft, 95),
                "p99_ttft_ms": percentile(ttft, 99), "p50_tpot_ms": percentile(tpot, 50),
                "output_tokens_per_s": out / elapsed if elapsed > 0 else None, "ttft_ms": ttft}


def slo_limits(config: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The config's [slo] table as sessions.metrics SLO keys: `ttft_p95_ms` names the summary field
    p95_ttft_ms, `ttft_ms` stays a per-request limit. The table is optional; keys that name no
    known figure, and limits that are not positive numbers, are left out rather than failing."""
    import re

    from sessions.errors import SessionsError
    from sessions.metrics import parse_slo

    out: dict[str, float] = {}
    for key, value in (config.get("slo") or {}).items():
        m = re.fullmatch(r"(ttft|tpot|itl|e2el)_(p\d+|mean|median|std)_ms", str(key))
        name = f"{m[2]}_{m[1]}_ms" if m else str(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        try:
            out.update(parse_slo(f"{name}={value}"))
        except SessionsError:
            continue
    return out
