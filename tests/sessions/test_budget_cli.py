"""`workbench budget` and `workbench route eval` as a user runs them: real subprocesses, real
imported trace fixtures, a recorded chat session, the embedded model and the embedding model."""
import json
from pathlib import Path

FX = Path(__file__).parent / "fixtures" / "traces"
DATA = Path(__file__).resolve().parents[2] / "sessions" / "data"


def _json(cp):
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def test_budget_on_imported_trace(wb, db_path):
    out = _json(wb("--db", db_path, "import", str(FX / "openai_orders_nplus1.json"), "--json"))
    tid = out[0]["trace_ids"][0] if isinstance(out, list) else out["files"][0]["trace_ids"][0]
    calls = _json(wb("--db", db_path, "budget", tid[:8], "--json"))
    assert len(calls) == 6
    for c in calls:
        assert sum(c["categories"].values()) == c["total_tokens"] > 0
        assert c["context_window"] == 128000 and "fallback" in c["tokenizer"] and "gpt-4o-mini" in c["tokenizer"]
    assert calls[-1]["total_tokens"] > calls[0]["total_tokens"]
    assert calls[1]["delta"]["tool_results"] > 0
    text = wb("--db", db_path, "budget", tid[:8])
    assert text.returncode == 0 and "overflow" in text.stdout and "tokenizer smollm2-135m" in text.stdout


def test_budget_policy_and_tools_from_cli(wb, db_path):
    calls = _json(wb("--db", db_path, "budget", str(FX / "openhands_events.json"), "--json", "--policy",
                     "--cap", "history=60", "--tools", str(DATA / "routing_tools.json")))
    last = calls[-1]
    assert last["categories"]["tool_definitions"] > 0
    assert any(w["kind"] == "repeated_content" for w in last["warnings"])
    p = last["policy"]
    assert p["actions"] and p["after"]["total_tokens"] < last["total_tokens"]
    assert sum(p["after"]["categories"].values()) == p["after"]["total_tokens"]


def test_budget_on_recorded_chat_session_matches_engine_count(wb, db_path):
    chat = _json(wb("--db", db_path, "chat", "--prompt", "Name three colors.", "--max-tokens", "4", "--temperature", "0", "--json"))
    calls = _json(wb("--db", db_path, "budget", chat["session_id"], "--json"))
    assert len(calls) == 1
    c = calls[0]
    assert c["tokenizer"] == "smollm2-135m" and c["context_window_source"].startswith("engine")
    assert c["total_tokens"] == c["reported_input_tokens"] == chat["metrics"]["prompt_tokens"]
    assert c["categories"]["system_prompt"] > 0 and c["categories"]["current_user_turn"] > 0
    assert c["output_reserve"] == 4


def test_budget_bad_input_is_one_line(wb, db_path):
    cp = wb("--db", db_path, "budget", "nosuchid")
    assert cp.returncode == 2 and "Traceback" not in cp.stderr
    assert cp.stderr.strip().count("\n") == 0 and "no trace or session" in cp.stderr
    cp = wb("--db", db_path, "budget", str(FX / "openhands_events.json"), "--policy", "--cap", "everything=3")
    assert cp.returncode == 2 and "not a category" in cp.stderr


def test_route_eval_json(wb, tmp_path):
    rows = [json.loads(line) for line in (DATA / "routing_queries.jsonl").read_text().splitlines()]
    sample = rows[::12]  # every tool-less query kind is sampled too
    qf = tmp_path / "q.jsonl"
    qf.write_text("".join(json.dumps(r) + "\n" for r in sample))
    m = _json(wb("route", "eval", str(qf), "--tools", str(DATA / "routing_tools.json"), "--k", "5", "--json"))
    for key in ("top1", "topk", "k", "abstain_precision", "abstain_recall", "tokens_saved_fraction"):
        assert key in m
    assert m["k"] == 5 and m["queries"] == len(sample)
    assert m["topk"] >= 0.85 and m["tokens_saved_fraction"] >= 0.8
    bad = wb("route", "eval", str(qf), "--tools", str(tmp_path / "none.json"))
    assert bad.returncode == 2 and "no such file" in bad.stderr
