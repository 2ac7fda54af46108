"""backend="auto": the torch engine on a CUDA machine (the embedded GGUF too), llama.cpp for a GGUF
on a CPU. torch.cuda.is_available is the seam: it is what decides on a real machine."""
from __future__ import annotations

import pytest
import torch

from engine import EngineError
from engine.backends import cuda_available, pick_backend
from engine.model_source import ModelSpec, resolve_model

EMBEDDED = resolve_model("smollm2-135m")
HF_DIR = ModelSpec("some/folder", "hf_dir", "/models/llama")


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_picks_torch_for_the_embedded_gguf_on_a_cuda_machine(gpu):
    assert EMBEDDED.kind == "gguf"
    assert cuda_available()
    assert pick_backend(EMBEDDED, "auto") == "torch"
    assert pick_backend(HF_DIR, "auto") == "torch"


def test_auto_keeps_llamacpp_for_a_gguf_on_a_cpu(no_gpu):
    assert not cuda_available()
    assert pick_backend(EMBEDDED, "auto") == "llamacpp"
    assert pick_backend(HF_DIR, "auto") == "torch"  # only torch reads a Hugging Face folder


def test_the_device_asked_for_decides_before_what_is_installed(gpu):
    assert pick_backend(EMBEDDED, "auto", device="cpu") == "llamacpp"
    assert pick_backend(EMBEDDED, "auto", device="cuda:0") == "torch"


def test_a_named_backend_is_taken_as_asked(gpu):
    assert pick_backend(EMBEDDED, "llamacpp") == "llamacpp"
    assert pick_backend(EMBEDDED, "torch", device="cpu") == "torch"
    with pytest.raises(EngineError, match="unknown backend"):
        pick_backend(EMBEDDED, "vllm")


def test_without_triton_the_gpu_path_falls_back_to_the_torch_ops(monkeypatch):
    """triton is optional: "auto" runs the torch reference ops, "triton" is one clear error."""
    import importlib.util

    from engine.torch import kernels

    real = importlib.util.find_spec
    monkeypatch.setattr(kernels.importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real(name, *a))
    assert kernels.triton_importable() == (False, "triton is not installed")
    assert kernels.resolve_kernels("auto", torch.device("cuda")) is None
    assert kernels.resolve_kernels("torch", torch.device("cuda")) is None
    with pytest.raises(EngineError, match="kernels='triton' asked for, but triton is not installed"):
        kernels.resolve_kernels("triton", torch.device("cuda"))
