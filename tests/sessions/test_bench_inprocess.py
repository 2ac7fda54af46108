"""`sessions.bench` against the embedded model in-process: every workload, both arrival modes,
the run and each request's token times in DuckDB; workloads are deterministic."""
from pathlib import Path

import pytest

from sessions.bench import BenchConfig, WorkloadOptions, build_workload, poisson_offsets, run_bench
from sessions.errors import SessionsError
from sessions.report import build_report, load_run
from sessions.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "traces"


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "b.duckdb")
    yield s
    s.close()


def test_workloads_are_deterministic_and_shaped():
    for name in ("chat", "mixed", "code-edit", "json"):
        a = build_workload(name, WorkloadOptions(6, 32, seed=1))
        assert a == build_workload(name, WorkloadOptions(6, 32, seed=1)) and len(a) == 6
        assert all(1 <= it.max_tokens <= 32 for it in a)
    mixed = build_workload("mixed", WorkloadOptions(30, 40, seed=2))
    lens = {it.name: len(it.prompt) for it in mixed}
    assert lens["mixed:long"] > 5 * lens["mixed:short"]
    with pytest.raises(SessionsError, match="unknown workload"):
        build_workload("nope", WorkloadOptions(1, 8))
    gaps = [b - a for a, b in zip(*(lambda o: (o, o[1:]))(poisson_offsets(2000, 50.0, 0)))]
    assert abs(sum(gaps) / len(gaps) - 1 / 50.0) < 0.002  # mean gap 1/rate


@pytest.mark.slow
@pytest.mark.parametrize("workload,arrivals", [("chat", {"concurrency": 2}), ("mixed", {"request_rate": 20.0}),
                                               ("code-edit", {}), ("json", {"concurrency": 3})])
def test_runs_are_recorded_with_token_times(embedded_engine, store, workload, arrivals):
    cfg = BenchConfig(workload=workload, num_requests=2, max_tokens=5, **arrivals)
    out = run_bench(embedded_engine, store, cfg)
    assert out.status == "finished" and out.completed == 2
    run = store.execute("SELECT workload, status, summary, concurrency, request_rate FROM bench_runs WHERE id = ?",
                        [out.run_id]).fetchone()
    assert run[0] == workload and run[1] == "finished" and '"mean_ttft_ms"' in run[2]
    data = load_run(store, out.run_id)
    assert [r.item.split(":")[0] for r in data.records] == [workload] * 2
    for r in data.records:
        assert r.completed and len(r.token_times_ns) == r.output_tokens >= 1
        assert r.token_times_ns == sorted(r.token_times_ns) and r.token_times_ns[0] == r.first_token_ns
        assert r.prompt_tokens > 5
    rep = build_report(store, out.run_id)
    assert rep["completed"] == 2 and rep["mean_ttft_ms"] > 0 and rep["total_output_tokens"] == sum(rep["output_lens"])


@pytest.mark.slow
def test_trace_replay_workload(embedded_engine, store):
    from sessions.traces.importers import parse_file
    from sessions.traces.store import save_parsed

    stored = save_parsed(store, parse_file(FIXTURES / "openai_log.jsonl"))
    items = build_workload("trace", WorkloadOptions(4, 6, store=store, trace_id=stored.trace_ids[0][:8]))
    assert len(items) == 4 and all(isinstance(it.prompt, list) and it.prompt for it in items)
    out = run_bench(embedded_engine, store, BenchConfig(workload="trace", num_requests=2, max_tokens=3,
                                                        trace_id=stored.trace_ids[0]))
    assert out.completed == 2
