"""Imported traces in DuckDB: write one file's traces in one transaction (idempotent by content
hash), list them, and read one back as plain data or as a Trace for the detector and replay."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from sessions.recorder import insert_many
from sessions.store import Store, StoreError
from sessions.traces.importers import ParsedFile
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


BULK_ROWS = 500  # above this, rows go through a temporary NDJSON file: bound parameters are slow
_SPAN_TYPES = ("VARCHAR", "VARCHAR", "VARCHAR", "INTEGER", "VARCHAR", "VARCHAR", "BIGINT", "BIGINT", "BIGINT", "BIGINT",
               "VARCHAR", "VARCHAR", "VARCHAR", "JSON", "VARCHAR", "VARCHAR", "INTEGER", "INTEGER", "INTEGER",
               "JSON", "JSON", "JSON")
_MSG_TYPES = ("VARCHAR", "INTEGER", "JSON")
_ROW_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def _bulk_insert(cur, table: str, columns: tuple[str, ...], types: tuple[str, ...], rows, on_rows) -> None:
    """DuckDB reads NDJSON far faster than it binds parameters; the INSERT ... SELECT runs inside
    the caller's transaction, so the file stays atomic."""
    fd, tmp = tempfile.mkstemp(suffix=".ndjson", prefix="wb-traces-")
    try:
        n = 0
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(_ROW_ENCODER.encode(dict(zip(columns, row))))
                f.write("\n")
                n += 1
                if on_rows and n % 5000 == 0:
                    on_rows(n)
        spec = "{" + ", ".join(f"'{c}': '{t}'" for c, t in zip(columns, types)) + "}"
        cur.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM "
                    f"read_json(?, format = 'newline_delimited', columns = {spec}, maximum_object_size = 1073741824)", [tmp])
    finally:
        os.unlink(tmp)


@dataclass(slots=True)
class StoredFile:
    path: str
    format: str
    trace_ids: list[str] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)  # the others were already stored
    has_timings: bool = False
    spans: int = 0


def _dumps(v: Any) -> str | None:
    return None if v is None else json.dumps(v, ensure_ascii=False, default=str)


def _raw(v: Any) -> Any:
    return v


def _span_row(tid: str, s: Span, enc=_dumps) -> tuple:
    """`enc` serializes the JSON columns; the bulk path passes them through raw so that each row
    is JSON-encoded once, not its payloads twice."""
    a = s.attributes
    tc = s.tool_call
    return (tid, s.span_id, s.parent_id, s.seq, s.kind, s.name, s.start_ns, s.end_ns, s.duration_ns,
            s.first_token_ns, s.status, tc.name if tc else None, tc.call_id if tc else a.get(TOOL_CALL_ID),
            enc(tc.arguments) if tc else None, tc.result if tc else None,
            a.get(REQUEST_MODEL) or a.get(RESPONSE_MODEL), _int(a.get(INPUT_TOKENS)), _int(a.get(OUTPUT_TOKENS)),
            s.input_upto, enc([m.to_dict() for m in s.input_messages]) if s.input_messages is not None else None,
            enc([m.to_dict() for m in s.output_messages]) if s.output_messages else None, enc(a))


def _int(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def save_parsed(store: Store, parsed: ParsedFile, on_rows: Callable[[int, int], None] | None = None) -> StoredFile:
    """All traces of one file in one transaction: a failure stores nothing of this file."""
    out = StoredFile(parsed.path, parsed.format)
    cur = store.cursor()
    ids = [t.trace_id for t in parsed.traces]
    have = {r[0] for r in cur.execute("SELECT id FROM traces WHERE list_contains(?, id)", [ids]).fetchall()}
    todo = [t for t in parsed.traces if t.trace_id not in have]
    total = sum(len(t.spans) + len(t.messages) for t in todo) or 1
    done = 0
    now = datetime.now(timezone.utc)
    cur.execute("BEGIN TRANSACTION")
    try:
        for t in todo:
            starts = [s.start_ns for s in t.spans if s.start_ns is not None]
            ends = [s.end_ns for s in t.spans if s.end_ns is not None]
            cur.execute("INSERT INTO traces VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        [t.trace_id, parsed.content_hash, t.format, parsed.path, t.name, now,
                         min(starts) if starts else None, max(ends) if ends else None, t.has_timings,
                         len(t.spans), _dumps(t.attributes)])
            if len(t.spans) > BULK_ROWS:
                _bulk_insert(cur, "trace_spans", SPAN_COLUMNS, _SPAN_TYPES, (_span_row(t.trace_id, s, _raw) for s in t.spans),
                             lambda n: on_rows and on_rows(done + n, total))
            else:
                insert_many(cur, "trace_spans", SPAN_COLUMNS, [_span_row(t.trace_id, s) for s in t.spans])
            done += len(t.spans)
            if len(t.messages) > BULK_ROWS:
                _bulk_insert(cur, "trace_messages", ("trace_id", "seq", "message"), _MSG_TYPES,
                             ((t.trace_id, n, m.to_dict()) for n, m in enumerate(t.messages)), None)
            else:
                insert_many(cur, "trace_messages", ("trace_id", "seq", "message"),
                            [(t.trace_id, n, _dumps(m.to_dict())) for n, m in enumerate(t.messages)])
            done += len(t.messages)
            if on_rows:
                on_rows(done, total)
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    out.trace_ids = ids
    out.new_ids = [t.trace_id for t in todo]
    out.has_timings = any(t.has_timings for t in parsed.traces)
    out.spans = sum(len(t.spans) for t in parsed.traces)
    return out


def _rows(cur) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def list_traces(store: Store, limit: int = 500) -> list[dict[str, Any]]:
    return _rows(store.execute(
        """SELECT t.id, t.format, t.name, t.source, t.imported_at, t.span_count AS spans, t.has_timings,
                  (t.end_ns - t.start_ns) / 1e6 AS duration_ms,
                  count(*) FILTER (WHERE s.kind = 'llm') AS llm_calls,
                  count(*) FILTER (WHERE s.kind = 'tool') AS tool_calls,
                  sum(s.input_tokens) AS input_tokens, sum(s.output_tokens) AS output_tokens
           FROM traces t LEFT JOIN trace_spans s ON s.trace_id = t.id
           GROUP BY ALL ORDER BY t.imported_at DESC, t.id LIMIT ?""", [limit]))


def resolve_trace_id(store: Store, prefix: str) -> str:
    ids = [r[0] for r in store.execute("SELECT id FROM traces WHERE starts_with(id, ?)", [prefix]).fetchall()]
    if not ids:
        raise StoreError(f"no trace with id {prefix!r} (see `workbench traces`)")
    if len(ids) > 1:
        raise StoreError(f"trace id {prefix!r} is ambiguous ({len(ids)} traces match); give more characters")
    return ids[0]


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
