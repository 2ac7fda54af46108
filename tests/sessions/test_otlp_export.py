"""`workbench export otlp`: a recorded session and stored agent traces go out as OTLP JSON and come
back through the OTLP importer with the same spans, the same times (to the nanosecond), tokens,
messages and tool calls."""
import json
from pathlib import Path

import pytest

from sessions.otlp_export import export_document
from sessions.recorder import Recorder
from sessions.store import Store
from sessions.traces.importers import parse_bytes, parse_file
from sessions.traces.store import load_trace, save_parsed

FIXTURES = Path(__file__).parent / "fixtures" / "traces"


def _reimport(doc: dict):
    parsed = parse_bytes(json.dumps(doc).encode(), "export.json")
    assert parsed.format == "otlp" and len(parsed.traces) == 1
    return parsed.traces[0]


@pytest.mark.slow
def test_session_round_trip_through_the_cli(embedded_engine, tmp_path, wb):
    from engine import SamplingParams

    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        rec = Recorder(store)
        embedded_engine.add_listener(rec.on_event)
        try:
            sid = rec.new_session("chat", model=embedded_engine.model_name, backend="llamacpp", title="two turns")
            convo = []
            for q in ("Name a colour.", "And a fruit?"):
                rec.add_message(sid, "user", q)
                convo.append({"role": "user", "content": q})
                r = embedded_engine.submit(convo, SamplingParams(max_tokens=6, temperature=0),
                                           tags={"session_id": sid, "assistant_message": True}).result()
                convo.append({"role": "assistant", "content": r.text})
                rec.flush()  # the reply takes its place in the conversation before the next turn
        finally:
            embedded_engine.remove_listener(rec.on_event)
            rec.close()
        offset = store.execute("SELECT clock_offset_ns FROM sessions WHERE id = ?", [sid]).fetchone()[0]
        reqs = store.execute("SELECT id, arrival_ns, finished_ns, prompt_tokens, output_tokens, text FROM requests"
                             " ORDER BY arrival_ns").fetchall()
    out = tmp_path / "session.json"
    r = wb("--db", str(db), "export", "otlp", sid[:6], "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "3 spans" in r.stderr
    trace = parse_file(out).traces[0]
    root, *calls = trace.spans
    assert root.parent_id is None and root.kind == "other" and [c.parent_id for c in calls] == [root.span_id] * 2
    for call, (rid, arrival, finished, pin, pout, text) in zip(calls, reqs):
        assert call.kind == "llm" and call.name == "chat smollm2-135m"
        assert (call.start_ns, call.end_ns) == (arrival + offset, finished + offset)
        assert call.attributes["gen_ai.usage.input_tokens"] == pin
        assert call.attributes["gen_ai.usage.output_tokens"] == pout
        assert call.attributes["gen_ai.response.id"] == rid
        assert call.output_messages[0].content == text
    assert [m.content for m in calls[1].input_messages] == [m["content"] for m in convo[:3]]
    assert (root.start_ns, root.end_ns) == (calls[0].start_ns, calls[1].end_ns)


@pytest.mark.parametrize("fixture", ["otlp_genai.json", "langfuse_trace.json", "langsmith_runs.jsonl"])
def test_stored_trace_round_trip(tmp_path, fixture):
    with Store(tmp_path / "t.duckdb") as store:
        stored = save_parsed(store, parse_file(FIXTURES / fixture))
        original = load_trace(store, stored.trace_ids[0])
        kind, full, doc = export_document(store, stored.trace_ids[0][:8])
    assert kind == "trace" and full == stored.trace_ids[0]
    back = _reimport(doc)
    assert len(back.spans) == len(original.spans)
    ids = {}
    for a, b in zip(sorted(original.spans, key=lambda s: s.seq), back.spans):
        assert (b.kind, b.name, b.status) == (a.kind, a.name, a.status)
        assert (b.start_ns, b.duration) == (a.start_ns, a.duration)
        ids[a.span_id] = b.span_id
        assert b.parent_id == (ids.get(a.parent_id) if a.parent_id else None)
        assert b.tool_name == a.tool_name
        if a.tool_call is not None:
            assert (b.tool_call.arguments, b.tool_call.result) == (a.tool_call.arguments, a.tool_call.result)
        if a.kind == "llm":
            assert [(m.role, m.content) for m in back.input_for(b)] == [(m.role, m.content) for m in original.input_for(a)]
            assert [m.content for m in b.output_messages] == [m.content for m in a.output_messages]
            for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.request.model"):
                assert b.attributes.get(key) == a.attributes.get(key)


def test_unknown_id_is_one_clear_error(tmp_path, wb):
    db = tmp_path / "e.duckdb"
    Store(db).close()
    r = wb("--db", str(db), "export", "otlp", "nope")
    assert r.returncode == 2 and "no session, bench run or trace with id 'nope'" in r.stderr
