"""The real `workbench import / traces / trace show / nplus1` commands, run as subprocesses on a
temporary DuckDB file."""
import json
from pathlib import Path

FX = Path(__file__).parent / "fixtures" / "traces"
GOOD = ["otlp_genai.json", "openai_orders_nplus1.json", "swe_agent.traj", "langsmith_runs.jsonl"]


def test_import_json_idempotent_and_listing(wb, db_path):
    files = [str(FX / f) for f in GOOD]
    r = wb("--db", db_path, "import", *files, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [o["format"] for o in out] == ["otlp", "openai", "swe-agent", "langsmith"]
    assert len(out[0]["trace_ids"]) == 2 and out[0]["new_trace_ids"] == out[0]["trace_ids"]
    ids = {t for o in out for t in o["trace_ids"]}

    again = json.loads(wb("--db", db_path, "import", *files, "--json").stdout)
    assert [o["trace_ids"] for o in again] == [o["trace_ids"] for o in out]
    assert all(o["new_trace_ids"] == [] for o in again)

    listed = json.loads(wb("--db", db_path, "traces", "--json").stdout)
    assert {t["id"] for t in listed} == ids and len(listed) == len(ids)  # one copy each

    text = wb("--db", db_path, "traces")
    assert text.returncode == 0 and "no timings" in text.stdout  # the openai trace


def test_import_says_when_a_format_has_no_timings(wb, db_path):
    r = wb("--db", db_path, "import", str(FX / "openai_orders_nplus1.json"))
    assert r.returncode == 0
    assert "records no timings" in r.stdout and "not invented" in r.stdout


def test_bad_files_fail_alone_and_name_the_place(wb, db_path):
    r = wb("--db", db_path, "import", str(FX / "bad_missing_role.json"), str(FX / "otlp_genai.json"),
           str(FX / "bad_line.jsonl"), str(FX / "nope.json"), "--json")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    err = r.stderr.splitlines()
    assert f"workbench: error: {FX / 'bad_missing_role.json'}: $.messages[2].role: missing" in err
    assert any(l.startswith(f"workbench: error: {FX / 'bad_line.jsonl'}: line 3 column 27: not valid JSON") for l in err)
    assert any("nope.json: no such file" in l for l in err)
    out = json.loads(r.stdout)
    assert out[0]["error"]["where"] == "$.messages[2].role"
    assert out[1]["format"] == "otlp"
    listed = json.loads(wb("--db", db_path, "traces", "--json").stdout)
    assert sorted(t["format"] for t in listed) == ["otlp", "otlp"]  # nothing of the bad files


def test_forced_format(wb, db_path):
    r = wb("--db", db_path, "import", "--format", "langfuse", str(FX / "otlp_genai.json"))
    assert r.returncode == 2 and "does not look like langfuse" in r.stderr
    r = wb("--db", db_path, "import", "--format", "bogus", str(FX / "otlp_genai.json"))
    assert r.returncode == 2 and "unknown format" in r.stderr
    r = wb("--db", db_path, "import", "--format", "anthropic", str(FX / "anthropic_files.json"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["format"] == "anthropic"


def test_trace_show(wb, db_path):
    out = json.loads(wb("--db", db_path, "import", str(FX / "otlp_genai.json"), "--json").stdout)
    tid = out[0]["trace_ids"][0]
    r = wb("--db", db_path, "trace", "show", tid[:8])
    assert r.returncode == 0, r.stderr
    assert "[agent] invoke_agent order_bot  2000.0 ms" in r.stdout
    assert '  [tool] get_order({"order_id": 5001})  40.0 ms' in r.stdout
    d = json.loads(wb("--db", db_path, "trace", "show", tid, "--json").stdout)
    assert d["id"] == tid and len(d["spans"]) == 12
    assert d["spans"][1]["attributes"]["gen_ai.operation.name"] == "chat"
    missing = wb("--db", db_path, "trace", "show", "ffffffff")
    assert missing.returncode == 2 and "no trace with id" in missing.stderr


def test_nplus1_json(wb, db_path):
    wb("--db", db_path, "import", *[str(FX / f) for f in GOOD])
    r = wb("--db", db_path, "nplus1", "--json")
    assert r.returncode == 0, r.stderr
    fs = json.loads(r.stdout)
    keys = {"kind", "trace_id", "tool", "count", "total_ms", "saved_ms_estimate", "estimate_method", "span_ids", "fingerprint"}
    assert all(keys <= set(f) for f in fs)
    got = sorted((f["kind"], f["tool"], f["count"]) for f in fs)
    assert got == [("n_plus_one", "cat", 3), ("n_plus_one", "get_order", 5), ("n_plus_one", "get_order_details", 4),
                   ("n_plus_one", "get_ticket_owner", 4), ("redundant", "get_config", 2)]
    untimed = next(f for f in fs if f["tool"] == "get_order_details")
    assert untimed["total_ms"] is None and untimed["saved_ms_estimate"] is None
    one = json.loads(wb("--db", db_path, "nplus1", untimed["trace_id"], "--json").stdout)
    assert [f["fingerprint"] for f in one] == [untimed["fingerprint"]]
    text = wb("--db", db_path, "nplus1", "--min-repeats", "5")
    assert "get_order " in text.stdout and "get_ticket_owner" not in text.stdout
