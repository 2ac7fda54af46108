import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# triton reads TRITON_INTERPRET once, at its import, and other packages (sentence-transformers)
# import it early: without an NVIDIA driver the Triton kernel tests run under the interpreter,
# so set it before any test module imports anything. kernels="auto" on a CPU never uses Triton.
if not os.path.exists("/proc/driver/nvidia"):
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def embedded_engine():
    """One llama.cpp engine on the embedded model, shared by the tests that only read from it."""
    from engine import Engine

    eng = Engine.load("smollm2-135m", backend="llamacpp", n_ctx=2048)
    yield eng
    eng.close()


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "wb.duckdb")


def run_workbench(*args, input=None, env=None, timeout=300, cwd=None):
    """Run the real `workbench` command (as `python -m workbench`) and return the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        input=input, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd or ROOT,
    )


@pytest.fixture
def wb():
    return run_workbench
