"""`workbench latency` and the latency section of `workbench report`, as processes, on a recorded
bench run (random-weight Llama, torch engine) and an imported public trace."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

from tests.conftest import run_workbench  # noqa: E402
from tests.sessions.latency_runs import engine_on, record_run, tiny_model  # noqa: E402

TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "traces" / "openhands" / "multi_swe_bench-output.jsonl"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A closed DuckDB file with a bench run whose six longest-prompt requests are the tail, and
    an imported timed trace."""
    from sessions.store import Store

    d = tmp_path_factory.mktemp("latency-cli")
    with engine_on(tiny_model(d / "model")) as eng, Store(d / "l.duckdb") as store:
        run_id, long_ids = record_run(eng, store, n=120, long_at={5, 27, 44, 63, 88, 110}, seed=3)
    db = str(d / "l.duckdb")
    p = run_workbench("--db", db, "import", str(TRACE))
    assert p.returncode == 0, p.stderr
    trace_id = p.stdout.strip().rsplit(" ", 1)[-1]
    return db, run_id, long_ids, trace_id


def test_json_names_the_planted_cause(recorded):
    db, run_id, long_ids, _ = recorded
    p = run_workbench("--db", db, "latency", run_id[:6], "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["kind"] == "run" and out["ref"] == run_id and out["n"] == 120
    assert [s["name"] for s in out["stages"]] == ["queue", "prefill", "decode"]
    sig = [f["feature"] for f in out["tail"] if f["significant"]]
    assert sig == ["prompt_tokens"] and len(set(out["tail_ids"]) & long_ids) >= 4
    assert "10.0x longer prompts" in out["verdict"]
    assert len(out["rows"]) == 120 and out["budgets"] == []


def test_table_and_budgets_from_the_config(recorded, tmp_path):
    db, run_id, _, _ = recorded
    cfg = tmp_path / "wb.toml"
    cfg.write_text("[slo]\nttft_p95_ms = 0.001\ne2el_p99_ms = 1000000\n")
    p = run_workbench("--db", db, "--config", str(cfg), "latency", run_id)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"bench run {run_id}")
    assert any(line.split()[:1] == ["prefill"] for line in lines)
    assert any("ttft_p95_ms" in line and "BLOWN" in line and line.rstrip().endswith("prefill") for line in lines)
    assert any("e2el_p99_ms" in line and " ok " in line for line in lines)
    assert lines[-1].startswith("p95 e2el ") and "ttft_p95_ms budget 0.001 blown by prefill" in lines[-1]
    # --slo on top of the config, in either order of the name
    p = run_workbench("--db", db, "--config", str(cfg), "latency", run_id, "--json", "--slo", "p50_decode_ms=100000")
    assert [b["metric"] for b in json.loads(p.stdout)["budgets"]] == ["ttft_p95_ms", "e2el_p99_ms", "p50_decode_ms"]


def test_trace_by_prefix(recorded):
    db, _, _, trace_id = recorded
    p = run_workbench("--db", db, "latency", trace_id[:5], "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["kind"] == "trace" and out["unit"] == "step" and out["n"] == 23
    assert sum(out["totals_ms"].values()) == pytest.approx(out["duration_ms"])
    p = run_workbench("--db", db, "latency", trace_id)
    assert p.returncode == 0 and "step " in p.stdout and "too few tail steps" in p.stdout


@pytest.mark.parametrize("args, needle", [
    (["latency", "ffffffffff"], "no bench run, session or trace with id 'ffffffffff'"),
    (["latency", "RUN", "--slo", "ttft_p95_ms=fast"], "write it as name=milliseconds"),
    (["latency", "RUN", "--slo", "itl_p95_ms=5"], "unknown figure 'itl'"),
])
def test_bad_input_is_one_line(recorded, args, needle):
    db, run_id, _, _ = recorded
    p = run_workbench("--db", db, *[run_id if a == "RUN" else a for a in args])
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("workbench: error: ") and needle in p.stderr


def test_bad_slo_in_the_config_is_one_line(recorded, tmp_path):
    db, run_id, _, _ = recorded
    cfg = tmp_path / "wb.toml"
    cfg.write_text("[slo]\nttft_p95 = 5\n")
    p = run_workbench("--db", db, "--config", str(cfg), "latency", run_id)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "[slo]" in p.stderr


def test_report_formats_carry_the_latency_section(recorded, tmp_path):
    db, run_id, long_ids, _ = recorded
    cfg = tmp_path / "wb.toml"
    cfg.write_text("[slo]\ne2el_p95_ms = 0.001\n")
    common = ("--db", db, "--config", str(cfg), "report", run_id)
    md = run_workbench(*common, "--format", "md")
    # the budget belongs to the latency section: the report's own SLO verdict (its exit status) is unchanged
    assert md.returncode == 0, md.stderr
    assert "## Where the p95 goes" in md.stdout and "| e2el_p95_ms | 0.00 |" in md.stdout
    assert "blown by prefill" in md.stdout and "| prompt_tokens |" in md.stdout
    js = json.loads(run_workbench(*common, "--format", "json").stdout)
    assert js["latency"]["kind"] == "run" and not js["latency"]["budgets"][0]["ok"]
    page = run_workbench(*common, "--format", "html").stdout
    assert "Where the p95 goes" in page and "BLOWN" in page and page.count("<svg") == 3
    rows = list(csv.DictReader(io.StringIO(run_workbench(*common, "--format", "csv").stdout)))
    assert len(rows) == 120
    for r in rows:
        parts = float(r["queue_ms"]) + float(r["prefill_ms"]) + float(r["decode_ms"])
        assert parts == pytest.approx(float(r["e2el_ms"]), abs=0.01)
    tail = {r["request_id"] for r in rows if r["in_p95_tail"] == "1"}
    assert tail == set(js["latency"]["tail_ids"]) and len(tail & long_ids) >= 4
