"""Backends behind the Engine facade; each is imported only when asked for, so that
`import engine` stays cheap (no torch for a llama.cpp chat)."""
from __future__ import annotations

from typing import Any

from engine.backends.base import Backend, SeqOutput
from engine.model_source import ModelSpec
from engine.types import BACKENDS, EngineError


def pick_backend(spec: ModelSpec, backend: str, device: str = "auto") -> str:
    """"auto": the torch engine wherever it is the faster one: always for a Hugging Face model, and
    for a GGUF (the embedded model too) on a CUDA GPU, where llama.cpp's CPU build would leave the
    GPU idle; llama.cpp for a GGUF on a CPU (or device="cpu")."""
    if backend not in BACKENDS:
        raise EngineError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if spec.kind != "gguf":
        return "torch"
    if device.startswith("cuda"):
        return "torch"
    return "torch" if device == "auto" and cuda_available() else "llamacpp"


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU, without importing torch on a machine with no NVIDIA driver
    (a llama.cpp chat on a laptop should not pay torch's import)."""
    import importlib.util
    import os
    import sys

    if "torch" not in sys.modules:
        if importlib.util.find_spec("torch") is None:
            return False
        if sys.platform == "linux" and not (os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia") or os.environ.get("CUDA_VISIBLE_DEVICES")):
            return False
    import torch

    return bool(torch.cuda.is_available())


def create_backend(spec: ModelSpec | None, backend: str, **options: Any) -> Backend:
    if backend == "llamacpp":
        from engine.backends.llamacpp import LlamaCppBackend

        assert spec is not None
        if spec.kind != "gguf":
            raise EngineError(f"the llamacpp backend needs a GGUF file; {spec.name} is not one")
        return LlamaCppBackend(spec, **options)
    if backend == "torch":
        try:
            from engine.torch.backend import TorchBackend
            from engine.torch.config import TorchConfig
        except ImportError as e:  # pragma: no cover - depends on the install
            raise EngineError(f"the torch backend is not available: {e}") from e
        assert spec is not None
        return TorchBackend(spec, TorchConfig.from_options(**options))
    if backend == "openai":
        try:
            from engine.backends.openai_backend import OpenAIBackend
        except ImportError as e:  # pragma: no cover
            raise EngineError(f"the openai backend is not available: {e}") from e
        return OpenAIBackend(spec, **options)
    raise EngineError(f"unknown backend {backend!r}")


__all__ = ["Backend", "SeqOutput", "create_backend", "cuda_available", "pick_backend"]
