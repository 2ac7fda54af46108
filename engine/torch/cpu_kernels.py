"""The engine's C++ CPU kernels (engine/torch/csrc: paged attention, the panel GEMM), compiled once
with the system's C++ compiler into the user cache dir and called through ctypes (which lets go of
the GIL for the call); without a compiler the torch path runs."""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

DISABLE_ENV = "WORKBENCH_CPU_KERNELS"  # "0": always use the torch reference path
_SOURCES = [Path(__file__).parent / "csrc" / name for name in ("paged_attention.cpp", "gemm.cpp")]
# -march=native: built on the machine that runs it. AMX is switched off: some hypervisors report
# it in CPUID and then fault on it.
_FLAGS = [
    ["-O3", "-ffast-math", "-march=native", "-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16"],
    ["-O3", "-ffast-math"],  # an older compiler that knows no AMX switches
]
_lock = threading.Lock()
_state: dict[str, object] = {}


def _cache_dir() -> Path:
    from engine.model_source import cache_dir

    return cache_dir("kernels")


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


def _build(cxx: str) -> Path:
    """Compile (once per source, compiler and flags) and return the shared library's path."""
    src = b"".join(p.read_bytes() for p in _SOURCES)
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    errors = []
    for flags in _FLAGS:
        key = hashlib.sha256(src + version.encode() + " ".join(flags).encode()).hexdigest()[:16]
        lib = _cache_dir() / f"cpu-kernels-{key}.so"
        if lib.exists():
            return lib
        lib.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=lib.parent)
        os.close(fd)
        cmd = [cxx, *flags, "-fopenmp", "-shared", "-fPIC", "-std=c++17", *map(str, _SOURCES), "-o", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode == 0:
            os.replace(tmp, lib)  # atomic: a concurrent build of the same key is harmless
            return lib
        os.unlink(tmp)
        errors.append(proc.stderr.strip().splitlines()[-1:] or ["failed"])
    raise RuntimeError(f"{cxx} could not build the CPU kernel: {errors[-1][0]}")


def _load() -> None:
    """Build/load the library once per process; keep its functions (or None) and the reason."""
    with _lock:
        if "why" in _state:
            return
        lib, why = None, "torch path"
        if os.environ.get(DISABLE_ENV, "1") == "0":
            why = f"torch path ({DISABLE_ENV}=0)"
        elif (cxx := _compiler()) is None:
            why = "torch path (no C++ compiler found)"
        else:
            try:
                lib = ctypes.CDLL(str(_build(cxx)))
                why = "C++ paged attention and panel GEMM"
            except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                why = f"torch path ({e})"
        p, i64 = ctypes.c_void_p, ctypes.c_int64
        attn = gemm = None
        if lib is not None:
            attn = lib.wb_paged_attention_f32
            attn.argtypes = [p, p, p, p, p, p, p, i64, i64, i64, i64, i64, i64, i64, i64, ctypes.c_float, ctypes.c_int]
            attn.restype = ctypes.c_int
            gemm = bind_gemm(lib)
        _state.update(why=why, attn=attn, gemm=gemm)


def bind_gemm(lib: ctypes.CDLL) -> tuple:
    """(gemm, pack, panel width) of a library built from gemm.cpp, their C signatures declared."""
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    gemm, pack = lib.wb_gemm_f32, lib.wb_gemm_pack_f32
    gemm.argtypes = [p, i64, i64, i64, p, i64, p, p, i64, ctypes.c_int]
    gemm.restype = ctypes.c_int
    pack.argtypes = [p, i64, i64, p]
    pack.restype = None
    return gemm, pack, lib.wb_gemm_panel_width()


def paged_attention_kernel():
    """The loaded paged-attention kernel, or None (disabled, no compiler, build failed)."""
    _load()
    return _state["attn"]


def kernel_status() -> str:
    _load()
    return str(_state["why"])


def paged_attention_rows(fn, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, tables: torch.Tensor,
                         row_seq: torch.Tensor, row_ctx: torch.Tensor, out: torch.Tensor, scale: float) -> None:
    """out[t] = attention of q[t] over the first row_ctx[t] cached tokens of its sequence, for every
    row with row_ctx > 0. q: [T, H, D], each row contiguous; out: [T, H, D]; caches: [KVH, NB, BS, D];
    all fp32. The caller keeps the index tensors int64 and contiguous."""
    t, h, d = q.shape
    assert q.stride(2) == 1 and q.stride(1) == d and out.is_contiguous() and k_cache.is_contiguous()
    kvh, nb, bs, _ = k_cache.shape
    rc = fn(q.data_ptr(), k_cache.data_ptr(), v_cache.data_ptr(), tables.data_ptr(), row_seq.data_ptr(),
            row_ctx.data_ptr(), out.data_ptr(), t, h, kvh, d, nb, bs, tables.shape[1], q.stride(0), scale,
            torch.get_num_threads())
    if rc:
        raise RuntimeError(f"paged attention kernel refused its input (code {rc})")



class PanelWeight:
    """A linear weight [N, K] (fp32) packed once for the C++ panel GEMM (engine/torch/csrc/gemm.cpp):
    panels of `width` output columns, k-major, the last one zero-padded; the bias (if any) padded
    to whole panels."""

    __slots__ = ("data", "bias", "out_features", "in_features", "gemm")

    def __init__(self, w: torch.Tensor, bias: torch.Tensor | None = None):
        gemm = _gemm()
        assert gemm is not None and w.dtype == torch.float32 and w.device.type == "cpu" and w.dim() == 2
        self.gemm, pack, width = gemm  # kept: a GEMM call then takes no lock to find its kernel
        n, k = w.shape
        panels = -(-n // width)
        w = w.contiguous()
        self.data = torch.empty(panels * width * k, dtype=torch.float32)
        pack(w.data_ptr(), n, k, self.data.data_ptr())
        self.bias = None
        if bias is not None:
            self.bias = torch.zeros(panels * width, dtype=torch.float32)
            self.bias[:n] = bias
        self.out_features, self.in_features = n, k

    @property
    def shape(self) -> tuple[int, int]:
        return self.out_features, self.in_features


def _gemm():
    _load()
    return _state["gemm"]


def panel_gemm_available() -> bool:
    """Whether the C++ panel GEMM loaded (a compiler, and the kernels not switched off)."""
    return _gemm() is not None


def panel_linear(x: torch.Tensor, w: PanelWeight) -> torch.Tensor:
    """x [..., K] (fp32, CPU) @ w^T (+ its bias): [..., N]."""
    k, n = w.in_features, w.out_features
    if x.dim() != 2:
        return panel_linear(x.reshape(-1, k), w).view(*x.shape[:-1], n)
    if x.stride(1) != 1 or x.stride(0) < k:
        x = x.contiguous()
    assert x.dtype == torch.float32 and x.shape[1] == k, (x.dtype, x.shape, k)
    y = torch.empty(x.shape[0], n, dtype=torch.float32)
    if x.shape[0]:
        rc = w.gemm(x.data_ptr(), x.shape[0], k, x.stride(0), w.data.data_ptr(), n,
                w.bias.data_ptr() if w.bias is not None else None, y.data_ptr(), n, torch.get_num_threads())
        if rc:
            raise RuntimeError(f"panel GEMM refused its input (code {rc})")
    return y
