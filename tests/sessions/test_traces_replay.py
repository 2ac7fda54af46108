"""Replay on the embedded model: every LLM call of an imported trace runs again with the messages
the agent had, is recorded as a `replay` session linked to the trace, and TTFT/e2e are compared."""
import json
from pathlib import Path

import pytest

from sessions.queries import get_session
from sessions.store import Store
from sessions.traces.importers import parse_file
from sessions.traces.model import Message, ToolCall
from sessions.traces.replay import engine_messages, replay_trace
from sessions.traces.store import get_trace, load_trace, save_parsed

FX = Path(__file__).parent / "fixtures" / "traces"
BACKEND = "llamacpp"  # replay is backend-agnostic; llama.cpp is the fast path on a CPU


@pytest.fixture(scope="module")
def replay_engine():
    from engine import Engine

    eng = Engine.load("smollm2-135m", backend=BACKEND)
    yield eng
    eng.close()


def test_engine_messages_carry_tool_results_as_text():
    msgs = [Message("system", "s"), Message("user", "u"),
            Message("assistant", "", [ToolCall("c1", "get", {"id": 1})]), Message("tool", "R1", tool_call_id="c1"),
            Message("tool", "R2", tool_call_id="c2")]
    out = engine_messages(msgs)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[2]["content"] == '[tool call] get({"id": 1})'
    assert "R1" in out[3]["content"] and "R2" in out[3]["content"]  # adjacent tool results merge
    assert engine_messages(msgs[:3])[-1] == {"role": "user", "content": "Continue."}


@pytest.mark.slow
def test_replay_records_a_linked_session(replay_engine, db_path):
    pf = parse_file(FX / "langsmith_runs.jsonl")  # timed: has original TTFT and e2e
    with Store(db_path) as store:
        save_parsed(store, pf)
        trace = load_trace(store, pf.traces[0].trace_id)
        result = replay_trace(store, replay_engine, trace, max_tokens=4)
        llm = [s for s in trace.spans if s.kind == "llm"]
        assert [s.span_id for s in result.steps] == [s.span_id for s in llm]
        step = result.steps[0]
        assert step.original_ttft_ms == pytest.approx(180.0) and step.original_e2e_ms == pytest.approx(400.0)
        assert all(s.replayed_ttft_ms > 0 and s.replayed_e2e_ms >= s.replayed_ttft_ms for s in result.steps)
        assert all(1 <= s.output_tokens <= 4 for s in result.steps)
        session = get_session(store, result.session_id)
        assert session["kind"] == "replay"
        assert sorted(r["id"] for r in session["requests"]) == sorted(s.request_id for s in result.steps)
        assert all(r["ttft_ms"] is not None for r in session["requests"])
        linked = get_trace(store, trace.trace_id)["replays"]
        assert linked[0]["session_id"] == result.session_id and linked[0]["steps"] == len(llm)


@pytest.mark.slow
def test_replay_cli(wb, db_path):
    out = json.loads(wb("--db", db_path, "import", str(FX / "openai_orders_nplus1.json"), "--json").stdout)
    tid = out[0]["trace_ids"][0]
    r = wb("--db", db_path, "--backend", BACKEND, "replay", tid, "--max-tokens", "3", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert len(res["steps"]) == 6
    assert all(s["original_ttft_ms"] is None and s["replayed_ttft_ms"] > 0 for s in res["steps"])
    text = wb("--db", db_path, "--backend", BACKEND, "replay", tid[:6], "--max-tokens", "2")
    assert text.returncode == 0, text.stderr
    assert "orig ttft ms" in text.stdout and "records no timings" in text.stdout
    sessions = json.loads(wb("--db", db_path, "sessions", "--json").stdout)
    assert [s["kind"] for s in sessions] == ["replay", "replay"]
