"""Labelled routing examples kept in DuckDB: (user turn -> tool actually called) pairs read from
imported traces, or from a labelled file, for the tool router to learn each tool's users' words."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from sessions.store import Store
from sessions.traces.model import Trace

MAX_QUERY_CHARS = 2000  # the embedder reads the first 256 word pieces; a whole issue text adds nothing


@dataclass(slots=True, frozen=True)
class RouteExample:
    query: str
    tool: str
    source: str = "trace"  # trace | file
    trace_id: str | None = None
    span_id: str | None = None


def _turn(text: str | None) -> str:
    return (text or "").strip()[:MAX_QUERY_CHARS]


def examples_from_trace(trace: Trace) -> list[RouteExample]:
    """Each tool call paired with the last user turn before it. Calls are read from llm spans'
    outputs (the turn from that span's input), from the conversation's assistant messages, and
    from tool spans (the turn last seen in issue order), so span- and message-log formats both give
    examples. A call with no user turn before it (an agent's own follow-up) gives none."""
    out: list[RouteExample] = []
    seen: set[tuple[str, str]] = set()

    def add(query: str, tool: str | None, span_id: str | None) -> None:
        if query and tool and (query, tool) not in seen:
            seen.add((query, tool))
            out.append(RouteExample(query, tool, "trace", trace.trace_id, span_id))

    last_user = ""
    for span in sorted(trace.spans, key=lambda s: s.seq):
        if span.kind == "llm":
            users = [m for m in trace.input_for(span) if m.role == "user" and _turn(m.content)]
            if users:
                last_user = _turn(users[-1].content)
            for m in span.output_messages:
                for call in m.tool_calls:
                    add(last_user, call.name, span.span_id)
        elif span.kind == "tool":
            add(last_user, span.tool_name, span.span_id)
    last_user = ""
    for m in trace.messages:
        if m.role == "user" and _turn(m.content):
            last_user = _turn(m.content)
        for call in m.tool_calls:
            add(last_user, call.name, None)
    return out


def save_examples(store: Store, examples: Iterable[RouteExample]) -> int:
    """Stores the examples not already there (a turn and tool once); returns how many were new."""
    rows = list({(e.query, e.tool): e for e in examples if e.query and e.tool}.values())
    if not rows:
        return 0
    now = datetime.now(timezone.utc)
    cur = store.cursor()
    before = cur.execute("SELECT count(*) FROM route_examples").fetchone()[0]
    cur.executemany(
        "INSERT OR IGNORE INTO route_examples (query, tool, source, trace_id, span_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [(e.query, e.tool, e.source, e.trace_id, e.span_id, now) for e in rows])
    return cur.execute("SELECT count(*) FROM route_examples").fetchone()[0] - before


def load_examples(store: Store, tools: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(query, tool) pairs, oldest first; only those of `tools` when given."""
    rows = store.execute("SELECT query, tool FROM route_examples ORDER BY created_at, query, tool").fetchall()
    keep = set(tools) if tools is not None else None
    return [(q, t) for q, t in rows if keep is None or t in keep]


def example_counts(store: Store) -> list[dict[str, Any]]:
    """Examples per tool and where they came from, for `route examples`."""
    rows = store.execute(
        "SELECT tool, count(*) AS examples, count(DISTINCT trace_id) AS traces, string_agg(DISTINCT source, ',') "
        "FROM route_examples GROUP BY tool ORDER BY examples DESC, tool").fetchall()
    return [{"tool": t, "examples": n, "traces": k, "sources": sorted(s.split(","))} for t, n, k, s in rows]
