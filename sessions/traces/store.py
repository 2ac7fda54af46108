"""Imported traces in DuckDB: write one file's traces in one transaction (idempotent by content
hash), list them, and read one back as plain data or as a Trace for the detector and replay."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from sessions.recorder import insert_many
from sessions.queries import resolve_prefix
from sessions.store import Store
from sessions.traces.fastjson import make_store_encoder
from sessions.traces.gcpause import gc_paused
from sessions.traces.importers import ParsedFile, TraceImportError
from sessions.traces.model import (
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    REQUEST_MODEL,
    RESPONSE_MODEL,
    TOOL_CALL_ID,
    Message,
    Span,
    ToolCall,
    Trace,
)

SPAN_COLUMNS = ("trace_id", "span_id", "parent_id", "seq", "kind", "name", "start_ns", "end_ns", "duration_ns",
                "first_token_ns", "status", "tool_name", "tool_call_id", "tool_arguments", "tool_result", "model",
                "input_tokens", "output_tokens", "input_upto", "input_messages", "output_messages", "attributes")
_SPAN_INTS = frozenset(("seq", "start_ns", "end_ns", "duration_ns", "first_token_ns", "input_tokens", "output_tokens",
                        "input_upto"))
MESSAGE_COLUMNS = ("trace_id", "seq", "message")
_MESSAGE_INTS = frozenset(("seq",))
TRACE_COLUMNS = ("id", "content_hash", "format", "source", "name", "start_ns", "end_ns", "has_timings",
                 "span_count", "attributes")  # and imported_at, one value per batch
_TRACE_INTS = frozenset(("start_ns", "end_ns", "span_count", "has_timings"))  # kept as numbers, not text
BULK_ROWS = 32  # above this, rows go in as numpy columns: a VALUES list binds each cell apart (~30 us each)
CHUNK_ROWS = 20_000  # rows per INSERT: bounds the column arrays and paces the progress bar

_json = make_store_encoder()  # JSON text of a value, built once


@dataclass(slots=True)
class StoredFile:
    path: str
    format: str
    trace_ids: list[str] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)  # the others were already stored
    has_timings: bool = False
    spans: int = 0


def _dumps(v: Any) -> str | None:
    return None if v is None else _json(v)


def _text(v: Any) -> str | None:
    """A VARCHAR cell from a value a loose format put there (an int call id, a bool): JSON text."""
    return v if v is None or type(v) is str else _json(v)


def _span_row(tid: str, s: Span) -> tuple:
    a = s.attributes
    tc = s.tool_call
    return (tid, s.span_id, s.parent_id, s.seq, s.kind, s.name, s.start_ns, s.end_ns, s.duration_ns,
            s.first_token_ns, s.status, tc.name if tc else None, tc.call_id if tc else a.get(TOOL_CALL_ID),
            _json(tc.arguments) if tc and tc.arguments is not None else None, tc.result if tc else None,
            a.get(REQUEST_MODEL) or a.get(RESPONSE_MODEL), _int(a.get(INPUT_TOKENS)), _int(a.get(OUTPUT_TOKENS)),
            s.input_upto, _json([m.to_dict() for m in s.input_messages]) if s.input_messages is not None else None,
            _json([m.to_dict() for m in s.output_messages]) if s.output_messages else None, _json(a))


def _int(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def _insert(cur, table: str, columns: tuple[str, ...], ints: frozenset[str], rows: list[tuple],
            constants: dict[str, Any] | None = None) -> None:
    """Rows into `table` with one statement: a few through bound parameters, more than BULK_ROWS
    as numpy columns (numpy's import is not worth it for a handful). Text cells a loose format
    filled with a number or a bool are stored as their JSON text on both paths."""
    if not rows:
        return
    cols = list(zip(*rows))
    for n, name in enumerate(columns):
        if name not in ints and not set(map(type, cols[n])) <= _TEXT_TYPES:
            cols[n] = [_text(v) for v in cols[n]]
    if len(rows) <= BULK_ROWS:
        extra = tuple((constants or {}).values())
        insert_many(cur, table, columns + tuple(constants or {}), [r + extra for r in zip(*cols)])
    else:
        _insert_columns(cur, table, columns, ints, cols, constants)


def _insert_columns(cur, table: str, columns: tuple[str, ...], ints: frozenset[str], cols: list,
                    constants: dict[str, Any] | None = None) -> None:
    """One INSERT ... SELECT over numpy columns: DuckDB scans them column by column, where a
    multi-row VALUES binds each value on its own and NDJSON had Python encode each row as an
    object. Integer columns travel as int64 plus a null mask: an object column's type is guessed
    from a sample, and a guess of INTEGER fails on a later nanosecond time. A value the same in
    every row (the import time) is bound once: a column of datetime objects converts slowly."""
    import numpy as np

    src: dict[str, Any] = {}
    select = []
    for name, col in zip(columns, cols):
        arr = np.array(col, dtype=object)
        if name in ints:
            nulls = arr == None  # noqa: E711 (elementwise)
            if nulls.any():
                arr[nulls] = 0
                src[name + "__null"] = nulls
                select.append(f"CASE WHEN {name}__null THEN NULL ELSE {name} END")
            else:
                select.append(name)
            arr = arr.astype(np.int64)
        else:
            select.append(name)
        src[name] = arr
    view = _VIEW + table
    cur.register(view, src)
    # on an error the view stays until _save has rolled back: unregistering needs a live transaction
    names = list(columns) + list(constants or {})
    select += ["?"] * len(constants or {})
    cur.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT {', '.join(select)} FROM {view}",
                list((constants or {}).values()))
    cur.unregister(view)


_TEXT_TYPES = {str, type(None)}
_VIEW = "_wb_import_"


def save_parsed(store: Store, parsed: ParsedFile, on_rows: Callable[[int, int], None] | None = None) -> StoredFile:
    """All traces of one file in one transaction: a failure stores nothing of this file."""
    out = save_many(store, [parsed], on_rows)[0]
    if isinstance(out, TraceImportError):
        raise out
    return out


def save_many(store: Store, files: list[ParsedFile],
              on_rows: Callable[[int, int], None] | None = None) -> list[StoredFile | TraceImportError]:
    """Many files in one transaction, each still whole or absent: a commit costs milliseconds (the
    WAL is synced), more than storing a small trace, so a directory of small files goes in batches.
    When a batch fails on a value that does not fit the store, its files are stored one by one and
    only the file at fault fails. Returns a StoredFile or the error, per file, in order."""
    with gc_paused():
        try:
            return _save(store, files, on_rows)
        except TraceImportError as e:
            if len(files) == 1:
                return [e]
        return [_one(store, f) for f in files]


def _one(store: Store, f: ParsedFile) -> StoredFile | TraceImportError:
    try:
        return _save(store, [f], None)[0]
    except TraceImportError as e:
        return e


def _save(store: Store, files: list[ParsedFile], on_rows: Callable[[int, int], None] | None) -> list[StoredFile]:
    cur = store.cursor()
    ids = [t.trace_id for f in files for t in f.traces]
    have = {r[0] for r in cur.execute("SELECT id FROM traces WHERE list_contains(?, id)", [ids]).fetchall()} if ids else set()
    now = datetime.now(timezone.utc)
    outs, todo_all, trace_rows = [], [], []
    for parsed in files:
        out = StoredFile(parsed.path, parsed.format)
        todo = []
        for t in parsed.traces:
            if t.trace_id not in have:
                have.add(t.trace_id)  # the same file twice in one batch stores it once
                todo.append(t)
        for t in todo:
            starts = [s.start_ns for s in t.spans if s.start_ns is not None]
            ends = [s.end_ns for s in t.spans if s.end_ns is not None]
            trace_rows.append((t.trace_id, parsed.content_hash, t.format, parsed.path, t.name,
                               min(starts) if starts else None, max(ends) if ends else None, t.has_timings,
                               len(t.spans), _dumps(t.attributes)))
        out.trace_ids = [t.trace_id for t in parsed.traces]
        out.new_ids = [t.trace_id for t in todo]
        out.has_timings = any(t.has_timings for t in parsed.traces)
        out.spans = sum(len(t.spans) for t in parsed.traces)
        outs.append(out)
        todo_all += todo
    # Rows of every trace in the batch go into one INSERT per table (per CHUNK_ROWS): many small
    # traces cost as few statements as one big trace.
    spans = [(t.trace_id, s) for t in todo_all for s in t.spans]
    messages = [(t.trace_id, n, m) for t in todo_all for n, m in enumerate(t.messages)]
    total = len(spans) + len(messages) or 1
    cur.execute("BEGIN TRANSACTION")
    try:
        _insert(cur, "traces", TRACE_COLUMNS, _TRACE_INTS, trace_rows, {"imported_at": now})
        done = 0
        for i in range(0, len(spans), CHUNK_ROWS):
            part = spans[i:i + CHUNK_ROWS]
            _insert(cur, "trace_spans", SPAN_COLUMNS, _SPAN_INTS, [_span_row(tid, s) for tid, s in part])
            done += len(part)
            if on_rows:
                on_rows(done, total)
        for i in range(0, len(messages), CHUNK_ROWS):
            part = messages[i:i + CHUNK_ROWS]
            _insert(cur, "trace_messages", MESSAGE_COLUMNS, _MESSAGE_INTS,
                    [(tid, n, _json(m.to_dict())) for tid, n, m in part])
            done += len(part)
            if on_rows:
                on_rows(done, total)
        cur.execute("COMMIT")
    except BaseException as e:
        cur.execute("ROLLBACK")
        for table in ("trace_spans", "trace_messages"):
            cur.unregister(_VIEW + table)
        import duckdb

        if isinstance(e, (OverflowError, duckdb.ConversionException)):
            # a number in the file too large for its column (an int64 time, an int32 count)
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            path = files[0].path if len(files) == 1 else f"{len(files)} files"
            raise TraceImportError(path, None, f"a value does not fit the store: {reason}") from None
        raise
    return outs


def _rows(cur) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def list_traces(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    rows = _rows(store.execute(
        """SELECT t.id, t.format, t.name, t.source, t.imported_at, t.span_count AS spans, t.has_timings,
                  (t.end_ns - t.start_ns) / 1e6 AS duration_ms,
                  count(*) FILTER (WHERE s.kind = 'llm') AS llm_calls,
                  count(*) FILTER (WHERE s.kind = 'tool') AS tool_calls,
                  sum(s.input_tokens) FILTER (WHERE s.kind = 'llm') AS input_tokens,
                  sum(s.output_tokens) FILTER (WHERE s.kind = 'llm') AS output_tokens,
                  count(*) FILTER (WHERE s.start_ns IS NOT NULL) AS timed_spans,
                  count(*) FILTER (WHERE s.kind = 'llm' AND s.start_ns IS NOT NULL AND s.end_ns IS NOT NULL) AS timed_llm,
                  count(*) FILTER (WHERE s.kind = 'llm' AND (s.input_tokens IS NOT NULL OR s.output_tokens IS NOT NULL))
                      AS llm_with_tokens,
                  count(*) FILTER (WHERE s.kind = 'llm' AND (s.input_messages IS NOT NULL OR s.input_upto IS NOT NULL))
                      AS llm_with_input
           FROM traces t LEFT JOIN trace_spans s ON s.trace_id = t.id
           GROUP BY ALL ORDER BY t.imported_at DESC, t.id LIMIT ?""", [limit]))
    for r in rows:
        r["not_recorded"] = not_recorded(r)
        for k in ("timed_spans", "timed_llm", "llm_with_tokens", "llm_with_input"):
            del r[k]
    return rows


def not_recorded(r: dict[str, Any]) -> list[str]:
    """What the trace's format did not record, so a listing can say so instead of showing a
    zero: an LLM time that is missing is not an LLM call that took no time."""
    out = []
    if not r["has_timings"]:
        out.append("timings")
    elif not r["timed_spans"]:
        out.append("start times (durations only)")
    elif r["llm_calls"] and not r["timed_llm"]:
        out.append("llm times")
    if not r["llm_calls"]:
        out.append("llm calls")
    elif not r["llm_with_tokens"]:
        out.append("tokens")
    elif r["llm_with_tokens"] < r["llm_calls"]:
        out.append(f"tokens of {r['llm_calls'] - r['llm_with_tokens']} call(s)")
    if r["llm_calls"] and not r["llm_with_input"]:
        out.append("prompts")
    return out


def resolve_trace_id(store: Store, prefix: str) -> str:
    return resolve_prefix(store, "traces", prefix, missing=f"no trace with id {prefix!r} (see `workbench traces`)",
                          ambiguous=f"trace id {prefix!r} is ambiguous ({{n}} traces match); give more characters")


def get_trace(store: Store, trace_id: str) -> dict[str, Any]:
    """One trace as plain data (what `trace show --json` prints and the inspector panel reads)."""
    tid = resolve_trace_id(store, trace_id)
    t = _rows(store.execute("SELECT * FROM traces WHERE id = ?", [tid]))[0]
    t["attributes"] = json.loads(t["attributes"]) if t["attributes"] else {}
    spans = _rows(store.execute("SELECT * EXCLUDE (trace_id) FROM trace_spans WHERE trace_id = ? ORDER BY seq", [tid]))
    for s in spans:
        for k in ("tool_arguments", "input_messages", "output_messages", "attributes"):
            if s[k] is not None:
                s[k] = json.loads(s[k])
        s["duration_ms"] = _duration_ms(s)
        s["ttft_ms"] = (s["first_token_ns"] - s["start_ns"]) / 1e6 if s["first_token_ns"] and s["start_ns"] else None
    t["spans"] = spans
    t["messages"] = [json.loads(r[0]) for r in store.execute(
        "SELECT message FROM trace_messages WHERE trace_id = ? ORDER BY seq", [tid]).fetchall()]
    t["replays"] = _rows(store.execute(
        "SELECT session_id, count(*) AS steps, min(created_at) AS created_at FROM trace_replays WHERE trace_id = ? GROUP BY session_id ORDER BY 3",
        [tid]))
    return t


def _duration_ms(s: dict[str, Any]) -> float | None:
    if s["start_ns"] is not None and s["end_ns"] is not None:
        return (s["end_ns"] - s["start_ns"]) / 1e6
    return s["duration_ns"] / 1e6 if s["duration_ns"] is not None else None


def load_trace(store: Store, trace_id: str) -> Trace:
    """A stored trace back as model objects, for the detector and replay."""
    d = get_trace(store, trace_id)
    return trace_from_dict(d)


def trace_from_dict(d: dict[str, Any]) -> Trace:
    t = Trace(d["id"], d["format"], d.get("name") or "", attributes=d.get("attributes") or {})
    t.messages = [Message.from_dict(m) for m in d.get("messages") or []]
    for s in d["spans"]:
        tc = None
        if s["tool_name"] is not None:
            tc = ToolCall(s["tool_call_id"], s["tool_name"], s["tool_arguments"], s["tool_result"])
        t.spans.append(Span(
            s["span_id"], s["kind"], s["name"], s["parent_id"], s["seq"], s["start_ns"], s["end_ns"], s["duration_ns"],
            s["first_token_ns"], s["status"], s["attributes"] or {}, tc,
            [Message.from_dict(m) for m in s["input_messages"]] if s["input_messages"] is not None else None,
            s["input_upto"], [Message.from_dict(m) for m in s["output_messages"] or []]))
    return t


def trace_ids(store: Store) -> list[str]:
    return [r[0] for r in store.execute("SELECT id FROM traces ORDER BY imported_at, id").fetchall()]
