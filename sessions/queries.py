"""Read-only questions asked of the store: list sessions, reopen one with its timings."""
from __future__ import annotations

import json
from typing import Any

from engine.types import percentile
from sessions.store import Store, StoreError


def _rows(cur) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def list_sessions(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    cur = store.execute(
        """
        SELECT s.id, s.created_at, s.kind, s.title, s.model, s.backend,
               count(r.id) AS requests,
               coalesce(sum(r.output_tokens), 0) AS output_tokens,
               list(r.ttft_ms) FILTER (WHERE r.ttft_ms IS NOT NULL) AS ttfts,
               sum(r.output_tokens - 1) FILTER (WHERE r.output_tokens > 1)
                 / nullif(sum((r.finished_ns - r.first_token_ns) / 1e9) FILTER (WHERE r.output_tokens > 1), 0)
                 AS output_tokens_per_s
        FROM sessions s LEFT JOIN requests r ON r.session_id = s.id
        GROUP BY ALL
        ORDER BY s.created_at DESC
        LIMIT ?
        """,
        [limit],
    )
    out = []
    for row in _rows(cur):
        ttfts = row.pop("ttfts") or []
        tps = row.pop("output_tokens_per_s")
        out.append({**row, "p50_ttft_ms": percentile(ttfts, 50), "p95_ttft_ms": percentile(ttfts, 95),
                    "output_tokens_per_s": tps})
    return out


def resolve_prefix(store: Store, table: str, prefix: str, *, missing: str, ambiguous: str) -> str:
    """The one id in `table` that starts with `prefix` (git-style short ids). `ambiguous` may use {n}."""
    ids = [r[0] for r in store.execute(f"SELECT id FROM {table} WHERE starts_with(id, ?)", [prefix]).fetchall()]
    if not ids:
        raise StoreError(missing)
    if len(ids) > 1:
        raise StoreError(ambiguous.format(n=len(ids)))
    return ids[0]


def resolve_session_id(store: Store, prefix: str) -> str:
    return resolve_prefix(store, "sessions", prefix, missing=f"no session with id {prefix!r}",
                          ambiguous=f"session id {prefix!r} is ambiguous ({{n}} sessions match); give more characters")


def get_session(store: Store, session_id: str, *, token_times: bool = True) -> dict[str, Any]:
    sid = resolve_session_id(store, session_id)
    session = _rows(store.execute("SELECT * FROM sessions WHERE id = ?", [sid]))[0]
    session["messages"] = _rows(
        store.execute("SELECT seq, role, content, request_id, created_at, cache_entry_id, cache_similarity FROM messages WHERE session_id = ? ORDER BY seq", [sid])
    )
    requests = _rows(
        store.execute(
            """SELECT id, status, finish_reason, error, model, backend, params, prompt_tokens, output_tokens,
                      cached_prompt_tokens, spec_draft_tokens, spec_accepted_tokens, ttft_ms, tpot_ms, e2el_ms,
                      queue_time_ms, prefill_time_ms, arrival_ns, first_token_ns, finished_ns, created_at,
                      prefix_report
               FROM requests WHERE session_id = ? ORDER BY arrival_ns""",
            [sid],
        )
    )
    if token_times and requests:
        times: dict[str, list[int]] = {r["id"]: [] for r in requests}
        cur = store.execute(
            """SELECT request_id, t_ns FROM token_events
               WHERE request_id IN (SELECT id FROM requests WHERE session_id = ?) AND token_id >= 0
               ORDER BY request_id, idx""",
            [sid],
        )
        for rid, t in cur.fetchall():
            times[rid].append(t)
        for r in requests:
            t = times[r["id"]]
            r["itl_ms"] = [(b - a) / 1e6 for a, b in zip(t, t[1:])]
    for r in requests:
        if isinstance(r.get("params"), str):
            r["params"] = json.loads(r["params"])
        if isinstance(r.get("prefix_report"), str):
            r["prefix_report"] = json.loads(r["prefix_report"])
    session["requests"] = requests
    return session


def session_summary(session: dict[str, Any]) -> dict[str, Any]:
    """p50/p95 TTFT and output tokens/s over a session's finished requests."""
    reqs = [r for r in session["requests"] if r.get("ttft_ms") is not None]
    ttfts = [r["ttft_ms"] for r in reqs]
    toks = sum(max(0, (r["output_tokens"] or 0) - 1) for r in reqs)
    gen_s = sum(
        (r["finished_ns"] - r["first_token_ns"]) / 1e9
        for r in reqs
        if r.get("finished_ns") and r.get("first_token_ns") and (r["output_tokens"] or 0) > 1
    )
    return {
        "requests": len(session["requests"]),
        "p50_ttft_ms": percentile(ttfts, 50),
        "p95_ttft_ms": percentile(ttfts, 95),
        "output_tokens_per_s": toks / gen_s if gen_s else None,
    }
