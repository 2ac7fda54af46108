"""The torch engine's one config: KV cache, batching, device and speculation, by the option names
`Engine.load(backend="torch", ...)` takes; the scheduler and the model runner read it as resolved."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from engine.types import SPECULATION_MODES, EngineError

# dtype names taken -> torch's name for them ("auto": bf16 on a GPU, fp32 on a CPU)
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}
KERNEL_CHOICES = ("auto", "triton", "torch")
SPEC_OPTIONS = ("k_max", "self_layers", "ngram_max", "ngram_min")  # TorchBackend.set_speculation's


@dataclass(slots=True)
class TorchConfig:
    device: str = "auto"  # auto: cuda when torch sees a GPU
    dtype: str = "auto"  # auto: bf16 on a GPU, fp32 on a CPU
    block_size: int = 16
    num_kv_blocks: int = 0  # 0: sized from kv_cache_gb (CPU) or from free memory (GPU)
    kv_cache_gb: float = 2.0
    gpu_memory_utilization: float = 0.85
    max_num_seqs: int | None = None  # None: 256 on a GPU, 64 on a CPU
    max_num_batched_tokens: int | None = None  # None: 8192 on a GPU, 1024 on a CPU
    max_model_len: int | None = None  # None: the model's context window
    n_ctx: int | None = None  # llama.cpp's name for max_model_len: an [engine] n_ctx serves both backends
    enable_prefix_caching: bool = True
    cuda_graphs: bool = True
    # the device path's kernels: "auto" (Triton on a CUDA GPU when triton imports, else the torch
    # ops), "triton", or "torch" (the reference ops, for debugging; on a GPU it keeps the dense
    # per-step KV gather and its memory reservation)
    kernels: str = "auto"
    n_threads: int | None = None
    measure_bandwidth: bool = True  # for the roofline fraction (a copy benchmark at load)
    draft: str | None = None  # a draft model with the target's tokenizer
    speculation: str = "auto"
    spec_options: dict[str, Any] = field(default_factory=dict)  # SPEC_OPTIONS, for set_speculation()

    def __post_init__(self) -> None:
        self.spec_options = dict(self.spec_options or {})
        check_speculation(self.speculation, self.draft)
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise EngineError(f"unknown dtype {self.dtype!r}: choose one of auto, {', '.join(DTYPES)}")
        if self.kernels not in KERNEL_CHOICES:
            raise EngineError(f"unknown kernels {self.kernels!r}: choose one of {', '.join(KERNEL_CHOICES)}")
        unknown = sorted(set(self.spec_options) - set(SPEC_OPTIONS))
        if unknown:
            raise EngineError(f"unknown spec_options {', '.join(unknown)}: choose from {', '.join(SPEC_OPTIONS)}")

    @classmethod
    def from_options(cls, **options: Any) -> "TorchConfig":
        """Engine.load's options for the torch backend; a name it does not take is one clear error."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise EngineError(f"the torch backend has no option {', '.join(unknown)}; it takes {', '.join(names)}")
        return cls(**options)

    def resolve(self, gpu: bool, model_max_len: int) -> "TorchConfig":
        """A copy with what None means filled in, for this device and a model that attends to at
        most model_max_len tokens: the scheduler and the model runner read only resolved configs."""
        limit = self.max_model_len or self.n_ctx or model_max_len
        seqs = self.max_num_seqs or (256 if gpu else 64)
        batched = max(self.max_num_batched_tokens or (8192 if gpu else 1024), seqs)
        return replace(self, max_num_seqs=seqs, max_num_batched_tokens=batched, max_model_len=min(limit, model_max_len))


def check_speculation(mode: str, draft: str | None) -> None:
    if mode not in SPECULATION_MODES:
        raise EngineError(f"unknown speculation {mode!r}: choose one of {', '.join(SPECULATION_MODES)}")
    if draft is not None and mode in ("ngram", "self"):
        raise EngineError(f"speculation={mode!r} does not use a draft model; drop draft= or use 'draft' or 'auto'")
