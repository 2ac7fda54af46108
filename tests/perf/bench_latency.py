"""Benchmark: the cost of the latency budget and tail analysis (`sessions.latency.latency_report`) of
a recorded bench run, against the plain JSON report of the same run (`sessions.report.build_report`)
in the same script, and of the stage split of the largest timed public trace in tests/fixtures.

Run: PYTHONPATH=. python tests/perf/bench_latency.py [--requests 1000] [--repeat 5]
The run is recorded first on a random-weight Llama (torch engine, CPU), --requests raw-token
requests of 4 output tokens, one in twenty with a 10x longer prompt. Each measurement is taken
--repeat times, alternating with its baseline; medians and the ratio are printed with the load average."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sessions.latency import latency_report  # noqa: E402
from sessions.report import build_report  # noqa: E402
from sessions.store import Store  # noqa: E402
from tests.sessions.latency_runs import engine_on, record_run, tiny_model  # noqa: E402

TRACE = ROOT / "tests" / "fixtures" / "traces" / "openhands" / "multi_swe_bench-output.jsonl"


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    d = Path(tempfile.mkdtemp())
    with Store(d / "b.duckdb") as store:
        with engine_on(tiny_model(d / "model", hidden=64, layers=2)) as eng:
            run_id, _ = record_run(eng, store, n=a.requests, long_at=set(range(7, a.requests, 20)))
        from sessions.traces.importers import parse_file
        from sessions.traces.store import save_parsed, get_trace

        tid = save_parsed(store, parse_file(TRACE)).trace_ids[0]
        latency_report(store, run_id)  # scipy's import, once, outside the timings
        lat, rep, tr, tr_base = [], [], [], []
        for _ in range(a.repeat):
            lat.append(timed(lambda: latency_report(store, run_id, {"ttft_p95_ms": 50, "e2el_p99_ms": 500})))
            rep.append(timed(lambda: build_report(store, run_id)))
            tr.append(timed(lambda: latency_report(store, tid)))
            tr_base.append(timed(lambda: get_trace(store, tid)))
    m = statistics.median
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"run of {a.requests} requests: latency_report {m(lat) * 1e3:.1f} ms, build_report {m(rep) * 1e3:.1f} ms, "
          f"ratio {m(lat) / m(rep):.2f}")
    print(f"trace of 47 spans: latency_report {m(tr) * 1e3:.1f} ms, get_trace {m(tr_base) * 1e3:.1f} ms, "
          f"ratio {m(tr) / m(tr_base):.2f}")


if __name__ == "__main__":
    main()
