"""Importers: every format's fixture parses to the right spans, timings are kept exactly or left
out, malformed files fail with the file, the place and the reason, and a store write is atomic."""
import json
from pathlib import Path

import pytest

from sessions.store import Store
from sessions.traces.importers import TraceImportError, detect_format, load_document, parse_bytes, parse_file
from sessions.traces.model import Span, Trace
from sessions.traces.store import get_trace, list_traces, load_trace, save_parsed

FX = Path(__file__).parent / "fixtures" / "traces"

EXPECTED = {
    "openai_orders_nplus1.json": ("openai", 1, False),
    "openai_log.jsonl": ("openai", 1, False),
    "openai_near_miss.json": ("openai", 1, False),
    "anthropic_files.json": ("anthropic", 1, False),
    "otlp_genai.json": ("otlp", 2, True),
    "langfuse_trace.json": ("langfuse", 1, True),
    "langsmith_runs.jsonl": ("langsmith", 1, True),
    "swe_agent.traj": ("swe-agent", 1, True),
    "openhands_events.json": ("openhands", 1, True),
    "tau_bench_results.json": ("tau-bench", 2, False),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_detected_and_parsed(name):
    fmt, n_traces, timed = EXPECTED[name]
    pf = parse_file(FX / name)
    assert pf.format == fmt
    assert len(pf.traces) == n_traces
    assert any(t.has_timings for t in pf.traces) == timed
    for t in pf.traces:
        assert len(t.trace_id) == 16
        kinds = {s.kind for s in t.spans}
        assert "tool" in kinds
        if not timed:  # never invented
            assert all(s.start_ns is None and s.end_ns is None and s.duration_ns is None for s in t.spans)


def test_trace_ids_are_content_hashes():
    a = parse_file(FX / "otlp_genai.json")
    b = parse_bytes((FX / "otlp_genai.json").read_bytes(), "elsewhere.json")
    assert [t.trace_id for t in a.traces] == [t.trace_id for t in b.traces]
    c = parse_bytes((FX / "otlp_genai.json").read_bytes() + b"\n", "x.json")
    assert c.traces[0].trace_id != a.traces[0].trace_id


def test_openai_tool_results_matched_by_call_id():
    t = parse_file(FX / "openai_orders_nplus1.json").traces[0]
    tools = [s for s in t.spans if s.kind == "tool"]
    assert [s.tool_call.name for s in tools] == ["list_orders"] + ["get_order_details"] * 4
    assert tools[3].tool_call.arguments == {"order_id": "A-1003"}
    assert json.loads(tools[3].tool_call.result)["status"] == "processing"
    llm = [s for s in t.spans if s.kind == "llm"]
    # each LLM call saw every message before its reply
    assert [s.input_upto for s in llm] == [2, 4, 6, 8, 10, 12]
    assert t.input_for(llm[1])[-1].role == "tool"


def test_openai_log_fan_out_and_usage():
    t = parse_file(FX / "openai_log.jsonl").traces[0]
    llm = [s for s in t.spans if s.kind == "llm"]
    assert [s.attributes.get("gen_ai.usage.input_tokens") for s in llm] == [82, 190]
    tools = [s for s in t.spans if s.kind == "tool"]
    assert {s.attributes["workbench.requested_by"] for s in tools} == {llm[0].span_id}
    assert [s.tool_call.result for s in tools] == ['{"temp_c": 21}', '{"temp_c": 17}', '{"temp_c": 27}']


def test_anthropic_blocks():
    t = parse_file(FX / "anthropic_files.json").traces[0]
    assert t.messages[0].role == "system"
    tools = [s for s in t.spans if s.kind == "tool"]
    assert [s.tool_call.arguments["path"] for s in tools] == ["setup.cfg", "pyproject.toml", "tox.ini"]
    assert tools[2].tool_call.result == "[contents of tox.ini]"
    assert tools[0].tool_call.call_id == "toolu_00"


def test_otlp_keeps_nanoseconds_and_genai_attributes():
    pf = parse_file(FX / "otlp_genai.json")
    t = pf.traces[0]
    raw = json.loads((FX / "otlp_genai.json").read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    root = next(s for s in t.spans if s.parent_id is None)
    assert root.start_ns == int(raw["startTimeUnixNano"]) and root.kind == "agent"
    tool = next(s for s in t.spans if s.kind == "tool")
    assert tool.tool_call.arguments == {"order_id": 5001}
    assert tool.attributes["gen_ai.tool.call.id"] == "call_1"
    assert tool.duration == 40_000_000
    llm = next(s for s in t.spans if s.kind == "llm")
    assert llm.attributes["gen_ai.usage.input_tokens"] == 120
    assert llm.input_messages[0].content.startswith("Status of my 5")
    assert llm.output_messages[0].tool_calls[0].name == "get_order"


def test_langfuse_first_token_and_event():
    t = parse_file(FX / "langfuse_trace.json").traces[0]
    gen = next(s for s in t.spans if s.span_id == "obs-gen-1")
    assert gen.kind == "llm"
    assert (gen.first_token_ns - gen.start_ns) == 470_000_000
    assert gen.attributes["gen_ai.usage.output_tokens"] == 45
    ev = next(s for s in t.spans if s.span_id == "obs-ev")
    assert ev.start_ns == ev.end_ns
    assert all(s.parent_id == "obs-agent" for s in t.spans if s.span_id != "obs-agent")


def test_langsmith_tree_and_first_token():
    t = parse_file(FX / "langsmith_runs.jsonl").traces[0]
    root = next(s for s in t.spans if s.parent_id is None)
    assert root.kind == "agent" and root.name == "AgentExecutor"
    llm = [s for s in t.spans if s.kind == "llm"]
    assert (llm[0].first_token_ns - llm[0].start_ns) == 180_000_000
    assert llm[0].output_messages[0].tool_calls[0].arguments == {"ticket_id": 31}
    assert llm[0].attributes["gen_ai.request.model"] == "gpt-4o-mini"


def test_swe_agent_has_durations_only():
    t = parse_file(FX / "swe_agent.traj").traces[0]
    tools = [s for s in t.spans if s.kind == "tool"]
    assert tools[1].tool_call.name == "cat" and tools[1].duration_ns == 212_000_000
    assert all(s.start_ns is None for s in t.spans)
    llm = [s for s in t.spans if s.kind == "llm"]
    assert t.input_for(llm[0])[-1].content.startswith("We're currently solving")


def test_openhands_tool_spans_run_from_action_to_observation():
    t = parse_file(FX / "openhands_events.json").traces[0]
    tools = [s for s in t.spans if s.kind == "tool"]
    assert len(tools) == 6
    assert tools[0].tool_call.arguments == {"command": "ruff check src"}
    assert tools[0].duration == 600_000_000
    assert tools[0].tool_call.result.startswith("src/app.py:3:1")
    llm = [s for s in t.spans if s.kind == "llm"]
    assert len(llm) == 6 and all(s.start_ns is None for s in llm)  # LLM start is not in the stream


def test_tau_bench_one_trace_per_run():
    pf = parse_file(FX / "tau_bench_results.json")
    assert [t.attributes["tau_bench.task_id"] for t in pf.traces] == [12, 13]
    assert len({t.trace_id for t in pf.traces}) == 2


@pytest.mark.parametrize("name, where, reason", [
    ("bad_truncated.json", "line 2 column 36", "not valid JSON"),
    ("bad_missing_role.json", "$.messages[2].role", "missing"),
    ("bad_line.jsonl", "line 3 column 27", "not valid JSON"),
])
def test_malformed_files_name_place_and_reason(name, where, reason):
    with pytest.raises(TraceImportError) as ei:
        parse_file(FX / name)
    assert ei.value.where == where
    assert reason in ei.value.reason
    assert str(ei.value).startswith(str(FX / name))


def test_jsonl_structural_error_is_reported_by_line(tmp_path):
    good = json.loads((FX / "langsmith_runs.jsonl").read_text().splitlines()[0])
    bad = dict(good, id="x", run_type="tool", start_time="yesterday")
    p = tmp_path / "runs.jsonl"
    p.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(TraceImportError) as ei:
        parse_file(p)
    assert ei.value.where == "line 3, $.start_time"
    assert "not an ISO 8601 time" in ei.value.reason


def test_unknown_shape_and_forced_format(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"hello": "world"}')
    with pytest.raises(TraceImportError, match="not a trace format"):
        parse_file(p)
    with pytest.raises(TraceImportError, match="does not look like otlp"):
        parse_file(FX / "openai_orders_nplus1.json", fmt="otlp")
    # a plain conversation is both openai and anthropic; forcing decides
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]))
    assert detect_format(load_document(plain.read_bytes(), "p")) == "openai"


def test_duplicate_span_ids_rejected(tmp_path):
    doc = json.loads((FX / "langfuse_trace.json").read_text())
    doc["observations"].append(dict(doc["observations"][1]))
    p = tmp_path / "dup.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(TraceImportError, match="appears twice"):
        parse_file(p)


def test_store_is_idempotent_and_round_trips(db_path):
    with Store(db_path) as store:
        pf = parse_file(FX / "otlp_genai.json")
        first = save_parsed(store, pf)
        again = save_parsed(store, parse_file(FX / "otlp_genai.json"))
        assert first.new_ids == first.trace_ids and again.new_ids == []
        assert store.execute("SELECT count(*) FROM traces").fetchone()[0] == 2
        assert store.execute("SELECT count(*) FROM trace_spans").fetchone()[0] == 17
        t = load_trace(store, pf.traces[0].trace_id[:6])
        orig = pf.traces[0]
        assert [(s.span_id, s.kind, s.start_ns, s.end_ns) for s in t.spans] == [(s.span_id, s.kind, s.start_ns, s.end_ns) for s in orig.spans]
        assert t.spans[1].input_messages[0].content == orig.spans[1].input_messages[0].content
        d = get_trace(store, orig.trace_id)
        assert d["spans"][0]["duration_ms"] == 2000.0
        assert {r["id"] for r in list_traces(store)} == set(first.trace_ids)


def test_store_write_is_atomic_per_file(db_path):
    """A failure inside the write (here a primary-key clash the parser would have refused) leaves
    nothing of the file behind, not even its other, valid trace."""
    pf = parse_file(FX / "tau_bench_results.json")
    broken = pf.traces[1]
    broken.spans.append(Span(broken.spans[1].span_id, "tool", "dup"))
    import duckdb

    with Store(db_path) as store:
        with pytest.raises(duckdb.ConstraintException):
            save_parsed(store, pf)
        assert store.execute("SELECT count(*) FROM traces").fetchone()[0] == 0
        assert store.execute("SELECT count(*) FROM trace_spans").fetchone()[0] == 0
        assert store.execute("SELECT count(*) FROM trace_messages").fetchone()[0] == 0
        ok = parse_file(FX / "openai_log.jsonl")
        assert save_parsed(store, ok).new_ids == [t.trace_id for t in ok.traces]  # the store is still usable


def test_bulk_path_stores_the_same_rows(db_path, monkeypatch):
    """Large traces go through NDJSON; what comes back must equal the row-by-row path."""
    import sessions.traces.store as ts

    pf = parse_file(FX / "otlp_genai.json")
    with Store(db_path) as store:
        save_parsed(store, pf)
        small = get_trace(store, pf.traces[0].trace_id)
        store.execute("DELETE FROM trace_spans")
        store.execute("DELETE FROM traces")
        monkeypatch.setattr(ts, "BULK_ROWS", 0)
        save_parsed(store, parse_file(FX / "otlp_genai.json"))
        bulk = get_trace(store, pf.traces[0].trace_id)
    for k in ("imported_at",):
        small.pop(k), bulk.pop(k)
    assert bulk == small
