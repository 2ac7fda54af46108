"""tests/perf/gpu_torch.py --cpu-smoke end to end: the GPU benchmark's whole path (engine from a
config, Triton kernels under the interpreter, batch-1 and batched runs, every speculation cell,
the cold-start report) on a tiny model, so its first run on a GPU does not die of a typo."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.torch.kernels import triton_importable
from tests.conftest import ROOT

ok, why = triton_importable()


@pytest.mark.slow
@pytest.mark.skipif(not ok, reason=f"the smoke run uses the Triton interpreter: {why}")
def test_gpu_benchmark_runs_end_to_end_on_the_cpu():
    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "tests/perf/gpu_torch.py", "--cpu-smoke", "--skip-hf"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["attention"] == "Triton paged attention" and out["stats"]["kernels"] == "triton"
    assert out["engine_b1_tok_s"] > 0 and out["engine_batch_tok_s"] > 0
    cells = out["speculation_cells"]
    assert [c["speculation"] for c in cells] == ["off", "ngram", "auto", "self"]
    assert cells[-1]["spec_draft_tokens"] > 0  # the verify rows went through the kernel
    assert {"load", "kv_cache", "graph_capture", "first_token"} <= set(out["cold_start_ms"])
