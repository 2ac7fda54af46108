"""Reports of recorded bench runs: JSON with vllm bench serve names, Markdown, CSV, HTML without
external resources, SLO exit status and comparison, through the real `workbench report` command."""
import csv
import importlib.util
import io
import json
import re
from pathlib import Path

import pytest

from engine import Engine
from sessions.bench import BenchConfig, run_bench
from sessions.report import write_report
from sessions.store import Store

PERF = Path(__file__).resolve().parents[1] / "perf" / "bench_client_overhead.py"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two recorded runs (the second with a slower first token) in a closed DuckDB file."""
    spec = importlib.util.spec_from_file_location("bench_client_overhead", PERF)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    db = tmp_path_factory.mktemp("report") / "r.duckdb"
    ids = []
    for ttft in (20.0, 60.0):
        proc, url = mod.start_server(ttft, 5.0, 8)
        try:
            engine = Engine.load(backend="openai", base_url=url)
            with Store(db) as store:
                ids.append(run_bench(engine, store, BenchConfig(num_requests=12, concurrency=4, max_tokens=8)).run_id)
            engine.close()
        finally:
            proc.terminate()
            proc.wait(10)
    return str(db), ids


def test_json_has_vllm_names_and_arrays(runs):
    db, (a, _) = runs
    with Store(db) as store:
        text, rep = write_report(store, a, "json")
    data = json.loads(text)
    assert data == json.loads(json.dumps(rep, default=str))
    for key in ("duration", "completed", "total_input_tokens", "total_output_tokens", "request_throughput",
                "output_throughput", "total_token_throughput", "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms",
                "p99_ttft_ms", "p90_tpot_ms", "p95_itl_ms", "mean_e2el_ms", "input_lens", "output_lens", "ttfts", "itls"):
        assert key in data, key
    assert data["completed"] == 12 and data["run_id"] == a and data["max_concurrency"] == 4
    assert len(data["ttfts"]) == 12 and all(len(x) == 7 for x in data["itls"])
    assert data["median_ttft_ms"] >= 20.0


def test_markdown_and_csv(runs):
    db, (a, b) = runs
    with Store(db) as store:
        md, _ = write_report(store, a, "md", compare_to=b)
        text, _ = write_report(store, a, "csv")
    assert "| TTFT |" in md and "## Compared with" in md and "TTFT: slower" in md
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 12 and all(float(r["ttft_ms"]) > 0 and r["output_tokens"] == "8" for r in rows)


def test_html_is_self_contained(runs):
    db, (a, b) = runs
    with Store(db) as store:
        page, _ = write_report(store, a, "html", compare_to=b, slo={"p99_ttft_ms": 10_000})
    assert page.count("<svg") == 3 and "PASS" in page
    low = page.lower()
    for bad in ("<script", "<link", "<img", "<iframe", "src=", "href=", "@import", "url("):
        assert bad not in low, bad
    assert not re.search(r"xmlns(:\w+)?=", page)  # not even a namespace URL


def test_report_cli_exit_status(runs, wb, tmp_path):
    db, (a, b) = runs
    out = tmp_path / "r.html"
    ok = wb("--db", db, "report", a[:6], "--out", str(out), "--slo", "ttft_ms=10000,p95_itl_ms=10000")
    assert ok.returncode == 0, ok.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")
    fail = wb("--db", db, "report", a, "--format", "json", "--slo", "ttft_ms=1")
    assert fail.returncode == 1 and "SLO failed" in fail.stderr
    assert json.loads(fail.stdout)["slo"]["passed"] is False
    cmp = wb("--db", db, "report", a, "--format", "json", "--compare", b)
    assert cmp.returncode == 0 and json.loads(cmp.stdout)["compare"]["noise"]["ttft"]["verdict"] == "slower"
    missing = wb("--db", db, "report", "zzzz", "--format", "md")
    assert missing.returncode == 2 and "no bench run or session" in missing.stderr and "Traceback" not in missing.stderr
    bad = wb("--db", db, "report", a, "--slo", "ttft=3")
    assert bad.returncode == 2 and "SLO" in bad.stderr
