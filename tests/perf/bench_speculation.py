"""Speculation bars on the embedded SmolLM2-135M, torch backend, CPU fp32 (baseline = speculation off,
run in this same script on the same loaded engine): auto vs off on every cell of the grid (bar: never
more than 3% slower), batch 1 code-edit auto >= 1.8x off with token-identical greedy output, and the
crossover batch size per workload. Prints JSON. The CPU may be shared: say so with the figures.

    PYTHONPATH=. python tests/perf/bench_speculation.py [--quick] [--batches 1,8,32] [--max-tokens 64]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--workloads", default="chat,code-edit,json")
    ap.add_argument("--modes", default="off,ngram,draft,auto")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--requests-per-slot", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    from engine import Engine
    from sessions.spec_sweep import SweepConfig, run_sweep
    from sessions.store import Store

    cfg = SweepConfig(tuple(a.workloads.split(",")), tuple(int(x) for x in a.batches.split(",")),
                      tuple(a.modes.split(",")), a.requests_per_slot, a.max_tokens, repeats=a.repeats)
    if a.quick:
        cfg.batch_sizes, cfg.requests_per_slot, cfg.max_tokens = (1, 8), 1, 24
    t0 = time.time()
    eng = Engine.load("smollm2-135m", backend="torch", device=a.device, speculation="off", measure_bandwidth=False)
    load_s = time.time() - t0
    with tempfile.TemporaryDirectory() as d:
        store = Store(os.path.join(d, "bench.duckdb"))
        try:
            res = run_sweep(eng, store, cfg, progress=lambda m: print("…", m, file=sys.stderr, flush=True))
        finally:
            store.close()
            eng.close()
    out = res.to_dict()
    auto = [c for c in out["cells"] if c["speculation"] == "auto"]
    worst = min(auto, key=lambda c: c["speedup"] or 0) if auto else None
    code1 = next((c for c in auto if c["workload"] == "code-edit" and c["batch_size"] == 1), None)
    out["bars"] = {
        "auto_never_slower_than_off_by_3pct": all((c["speedup"] or 0) >= 0.97 for c in auto),
        "worst_auto_cell": worst,
        "code_edit_batch1_auto_speedup": code1 and code1["speedup"],
        "code_edit_batch1_auto_ge_1.8x": bool(code1 and (code1["speedup"] or 0) >= 1.8),
        "code_edit_batch1_identical": code1 and code1["identical_to_off"],
        "all_identical_to_off": all(c["identical_to_off"] for c in out["cells"] if c["speculation"] != "off"),
    }
    out["setup"] = {"model": "smollm2-135m", "backend": "torch", "device": a.device, "dtype": "fp32",
                    "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(), "load_s": load_s,
                    "max_tokens": cfg.max_tokens, "requests_per_slot": cfg.requests_per_slot,
                    "note": "load_avg above 1 means other processes shared the CPU: compare ratios"}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
