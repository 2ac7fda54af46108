"""Writes sessions, messages, requests, every token event and engine step to DuckDB in batches,
from its own thread: the engine thread only appends to a queue."""
from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from engine.types import EngineEvent, RequestFinished, RequestStarted, StepEvent, TokenEvent
from sessions.store import Store

_FLUSH = "flush"
_CLOSE = "close"
# columns named: migrations append columns, so a positional INSERT would break on the next one
_INSERT_MESSAGE = ("INSERT INTO messages (session_id, seq, role, content, request_id, created_at, cache_entry_id, cache_similarity)"
                   " VALUES (?,?,?,?,?,?,?,?)")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def insert_many(cur, table: str, columns: tuple[str, ...], rows: list[tuple], chunk: int = 400) -> None:
    """Multi-row INSERT: far faster in DuckDB than executemany for thousands of small rows."""
    if not rows:
        return
    one = "(" + ",".join("?" * len(columns)) + ")"
    cols = ",".join(columns)
    for i in range(0, len(rows), chunk):
        part = rows[i : i + chunk]
        sql = f"INSERT INTO {table} ({cols}) VALUES " + ",".join([one] * len(part))
        cur.execute(sql, [v for row in part for v in row])


class Recorder:
    """Use `on_event` as an engine listener. Tags a request may carry: `session_id` (which
    session it belongs to) and `assistant_message` (store the reply as the session's next message)."""

    def __init__(self, store: "Store | Callable[[], Store]", *, flush_interval: float = 0.1,
                 record_steps: bool = True, autostart: bool = True):
        """`store` may be a callable that opens it: the writer thread calls it on `start()`, so a
        CLI can put the DuckDB import and open after its first token (events queue meanwhile)."""
        self.store = store if isinstance(store, Store) else None
        self._open_store = None if isinstance(store, Store) else store
        self.flush_interval = flush_interval
        self.record_steps = record_steps
        self.step_session_id: str | None = None
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._seq: dict[str, int] = {}
        self._seq_lock = threading.Lock()
        self._model: dict[str, tuple[str | None, str | None]] = {}
        self.error: BaseException | None = None
        self.rows_written = 0
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        if autostart:
            self._thread.start()

    def start(self) -> None:
        """Start writing (once); with `autostart=False` nothing touches the database before this."""
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()

    # ---- producer side (any thread) ----
    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, StepEvent) and not self.record_steps:
            return
        self._q.put(("event", event, self.step_session_id if isinstance(event, StepEvent) else None))

    def new_session(
        self,
        kind: str = "chat",
        *,
        model: str | None = None,
        backend: str | None = None,
        title: str | None = None,
        system_prompt: str | None = None,
        session_id: str | None = None,
    ) -> str:
        sid = session_id or uuid.uuid4().hex[:12]
        offset = time.time_ns() - time.perf_counter_ns()
        with self._seq_lock:
            self._seq[sid] = 0
        self._model[sid] = (model, backend)
        self._q.put(("sql", "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?)",
                     [sid, _now(), kind, title, model, backend, system_prompt, offset]))
        return sid

    def resume_session(self, session_id: str) -> None:
        """Continue numbering messages of a session that is already in the database."""
        row = self.store.execute(
            "SELECT coalesce(max(seq), -1) + 1 FROM messages WHERE session_id = ?", [session_id]
        ).fetchone()
        with self._seq_lock:
            self._seq[session_id] = int(row[0])

    def add_message(self, session_id: str, role: str, content: str, request_id: str | None = None, *,
                    cache_entry_id: str | None = None, cache_similarity: float | None = None) -> int:
        """`cache_entry_id`/`cache_similarity`: the reply was served by the semantic cache, not the engine."""
        with self._seq_lock:
            seq = self._seq.get(session_id, 0)
            self._seq[session_id] = seq + 1
        self._q.put(("sql", _INSERT_MESSAGE, [session_id, seq, role, content, request_id, _now(), cache_entry_id, cache_similarity]))
        return seq

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far is in the database."""
        self.start()
        if getattr(self, "_dead", False):
            raise self.error
        done = threading.Event()
        self._q.put((_FLUSH, done, None))
        if getattr(self, "_dead", False):
            self._fail_waiters()
        if not done.wait(timeout):
            raise TimeoutError("recorder did not flush in time")
        if self.error is not None:
            raise self.error

    def _fail_waiters(self) -> None:
        """The store never opened: release whoever waits on a flush or close, now and later."""
        self._dead = True
        while True:
            try:
                kind, a, _ = self._q.get_nowait()
            except queue.Empty:
                return
            if kind in (_FLUSH, _CLOSE):
                a.set()

    def close(self, timeout: float = 10.0) -> None:
        self.start()
        if self._thread.is_alive():
            done = threading.Event()
            self._q.put((_CLOSE, done, None))
            done.wait(timeout)
            self._thread.join(timeout)

    # ---- writer thread ----
    def _run(self) -> None:
        if self.store is None:
            try:
                self.store = self._open_store()
            except BaseException as e:  # surfaces on flush(); what is queued cannot be written
                self.error = e
                self._fail_waiters()
                return
        cur = self.store.cursor()
        while True:
            batch = [self._q.get()]
            deadline = time.monotonic() + self.flush_interval
            while batch[-1][0] not in (_FLUSH, _CLOSE):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(self._q.get(timeout=left))
                except queue.Empty:
                    break
            try:
                self._write(cur, batch)
            except Exception as e:  # keep the thread alive; surface on flush
                self.error = e
            last = batch[-1]
            if last[0] in (_FLUSH, _CLOSE):
                last[1].set()
                if last[0] == _CLOSE:
                    return

    def _write(self, cur, batch: Iterable[tuple[str, Any, Any]]) -> None:
        tokens: list[tuple] = []
        steps: list[tuple] = []
        cur.execute("BEGIN TRANSACTION")
        try:
            for kind, a, b in batch:
                if kind == "sql":
                    cur.execute(a, b)
                elif kind == "event":
                    self._event(cur, a, b, tokens, steps)
            insert_many(cur, "token_events", ("request_id", "idx", "token_id", "t_ns", "text"), tokens)
            insert_many(
                cur,
                "steps",
                ("session_id", "step", "t_start_ns", "t_end_ns", "batch_size", "prefill_tokens", "decode_tokens",
                 "running", "waiting", "kv_blocks_used", "kv_blocks_free", "roofline_fraction",
                 "spec_draft_tokens", "spec_accepted_tokens"),
                steps,
            )
            cur.execute("COMMIT")
            self.rows_written += len(tokens) + len(steps)
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def _event(self, cur, ev: EngineEvent, step_sid: str | None, tokens: list, steps: list) -> None:
        if isinstance(ev, TokenEvent):
            for k, tid in enumerate(ev.token_ids):
                tokens.append((ev.request_id, ev.index + k, tid, ev.t_ns, ev.text if k == 0 else ""))
            if not ev.token_ids and ev.text:
                tokens.append((ev.request_id, ev.index, -1, ev.t_ns, ev.text))  # trailing text flush
        elif isinstance(ev, StepEvent):
            steps.append((step_sid, ev.step, ev.t_start_ns, ev.t_end_ns, ev.batch_size, ev.prefill_tokens,
                          ev.decode_tokens, ev.running, ev.waiting, ev.kv_blocks_used, ev.kv_blocks_free,
                          ev.roofline_fraction, ev.spec_draft_tokens, ev.spec_accepted_tokens))
        elif isinstance(ev, RequestStarted):
            sid = ev.tags.get("session_id")
            model, backend = self._model.get(sid, (ev.tags.get("model"), ev.tags.get("backend")))
            cur.execute(
                "INSERT INTO requests (id, session_id, model, backend, status, params, arrival_ns, prompt_tokens, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                [ev.request_id, sid, model, backend, "running", json.dumps(ev.params.to_dict()),
                 ev.arrival_ns, ev.prompt_tokens, _now()],
            )
        elif isinstance(ev, RequestFinished):
            r = ev.result
            m = r.metrics
            d = m.to_dict()
            status = {"stop": "finished", "length": "finished"}.get(r.finish_reason, r.finish_reason)
            cur.execute(
                "UPDATE requests SET status=?, finish_reason=?, error=?, text=?, arrival_ns=?, scheduled_ns=?, first_token_ns=?,"
                " finished_ns=?, prompt_tokens=?, output_tokens=?, cached_prompt_tokens=?, spec_draft_tokens=?,"
                " spec_accepted_tokens=?, ttft_ms=?, tpot_ms=?, e2el_ms=?, queue_time_ms=?, prefill_time_ms=?,"
                " prefix_report=?, preemptions=?"
                " WHERE id=?",
                # arrival is written again: a remote backend restamps it when the HTTP request leaves
                [status, r.finish_reason, r.error, r.text, m.arrival_ns, m.scheduled_ns, m.first_token_ns, m.finished_ns,
                 m.prompt_tokens, m.output_tokens, m.cached_prompt_tokens, m.spec_draft_tokens,
                 m.spec_accepted_tokens, d["ttft_ms"], d["tpot_ms"], d["e2el_ms"], d["queue_time_ms"],
                 d["prefill_time_ms"], json.dumps(m.prefix_report) if m.prefix_report is not None else None,
                 m.preemptions, r.request_id],
            )
            sid = ev.tags.get("session_id")
            if sid and ev.tags.get("assistant_message") and (r.text or r.finish_reason != "error"):
                with self._seq_lock:
                    seq = self._seq.get(sid, 0)
                    self._seq[sid] = seq + 1
                cur.execute(_INSERT_MESSAGE, [sid, seq, "assistant", r.text, r.request_id, _now(), None, None])
