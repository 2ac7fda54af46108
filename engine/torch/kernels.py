"""Which kernels the torch engine's device path runs: the Triton ones (engine/torch/triton_kernels.py)
or the torch reference ops. triton is imported here, lazily, and only when it is wanted."""
from __future__ import annotations

import importlib.util
import os

import torch

from engine.torch.config import KERNEL_CHOICES
from engine.types import EngineError


def triton_importable() -> tuple[bool, str]:
    """(whether `import triton` works, why not)."""
    if importlib.util.find_spec("triton") is None:
        return False, "triton is not installed"
    try:
        import triton  # noqa: F401
    except Exception as e:  # a broken install: say so, run the torch path
        return False, f"triton does not import: {type(e).__name__}: {e}"
    return True, ""


def interpreting() -> bool:
    """Triton's interpreter runs the kernels on the CPU (numpy), for tests and smoke runs."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve_kernels(choice: str, device: torch.device):
    """The triton_kernels module, or None for the torch ops. "auto": Triton on a CUDA device when
    triton imports; on a CPU the C++/torch path (Triton there only when asked for, under the
    interpreter). "triton" that cannot be honoured is one clear error."""
    if choice not in KERNEL_CHOICES:
        raise EngineError(f"unknown kernels {choice!r}: choose one of {', '.join(KERNEL_CHOICES)}")
    if choice == "torch" or (choice == "auto" and device.type != "cuda"):
        return None
    ok, why = triton_importable()
    if not ok:
        if choice == "triton":
            raise EngineError(f"kernels='triton' asked for, but {why}")
        return None
    if device.type != "cuda" and not interpreting():
        raise EngineError("kernels='triton' on a CPU runs only under the interpreter: set TRITON_INTERPRET=1 "
                          "before starting")
    from engine.torch import triton_kernels

    return triton_kernels
