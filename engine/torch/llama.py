"""The Llama family (Llama, Mistral, Qwen2, Qwen3, SmolLM2) as one flat-token model over a paged
KV cache: every step is a packed list of tokens from many sequences, as in vLLM."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.torch.attention import AttentionMetadata, paged_attention, store_kv
from engine.torch.cpu_kernels import PanelWeight, panel_gemm_available, panel_linear
from engine.types import EngineError

SUPPORTED_ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3")


@dataclass(slots=True)
class ModelConfig:
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    attention_bias: bool = False
    qk_norm: bool = False
    rope_scaling: dict[str, Any] | None = None
    sliding_window: int | None = None

    @classmethod
    def from_hf(cls, cfg: dict[str, Any]) -> "ModelConfig":
        mtype = cfg.get("model_type", "")
        if mtype not in SUPPORTED_ARCHITECTURES:
            raise EngineError(
                f"the torch backend supports {', '.join(SUPPORTED_ARCHITECTURES)} models, not {mtype!r}; "
                "use --backend llamacpp for a GGUF of another architecture"
            )
        if cfg.get("hidden_act", "silu") != "silu":
            raise EngineError(f"unsupported activation {cfg.get('hidden_act')!r} (only silu)")
        heads = cfg["num_attention_heads"]
        window = cfg.get("sliding_window") if cfg.get("use_sliding_window", mtype == "mistral") else None
        rope_scaling = cfg.get("rope_scaling") or None
        rope_theta = cfg.get("rope_theta")
        if rope_theta is None and isinstance(cfg.get("rope_parameters"), dict):  # transformers >= 5
            rope_theta = cfg["rope_parameters"].get("rope_theta")
            if cfg["rope_parameters"].get("rope_type", "default") != "default":
                rope_scaling = cfg["rope_parameters"]
        return cls(
            model_type=mtype,
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_layers=cfg["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=cfg.get("num_key_value_heads") or heads,
            head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
            rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
            rope_theta=float(rope_theta or 10000.0),
            max_position_embeddings=cfg.get("max_position_embeddings", 4096),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            attention_bias=bool(cfg.get("attention_bias", mtype == "qwen2")),
            qk_norm=mtype == "qwen3",
            rope_scaling=rope_scaling,
            sliding_window=window,
        )

    def param_count(self) -> int:
        h, kvd = self.hidden_size, self.num_kv_heads * self.head_dim
        qd = self.num_heads * self.head_dim
        per_layer = h * (qd + 2 * kvd) + qd * h + 3 * h * self.intermediate_size + 2 * h
        per_layer += (qd + 2 * kvd) * self.attention_bias + 2 * self.head_dim * self.qk_norm
        emb = self.vocab_size * h * (1 if self.tie_word_embeddings else 2)
        return self.num_layers * per_layer + emb + h


def rope_inv_freq(cfg: ModelConfig) -> tuple[torch.Tensor, float]:
    """Inverse frequencies as transformers computes them (same float ops, so fp32 outputs match)."""
    dim = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rs = cfg.rope_scaling
    rtype = (rs or {}).get("rope_type", (rs or {}).get("type", "default"))
    if rtype == "default":
        return inv_freq, 1.0
    if rtype == "linear":
        return inv_freq / rs["factor"], 1.0
    if rtype == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old_ctx = rs["original_max_position_embeddings"]
        low_wl, high_wl = old_ctx / lo, old_ctx / hi
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wl, inv_freq / factor, inv_freq)
        smooth = (old_ctx / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        is_medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
        return torch.where(is_medium, smoothed, scaled), 1.0
    raise EngineError(f"unsupported rope_scaling type {rtype!r} (supported: default, linear, llama3)")


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if x.dtype == torch.float32 and weight.dtype == torch.float32:
        # one fused op instead of six; in fp32 it gives transformers' formula bit for bit
        return torch.rms_norm(x, weight.shape, weight, eps)
    # transformers' formula, op for op: upcast, normalize, cast back, scale
    dtype = x.dtype
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(dtype)


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, pack) -> torch.Tensor:
    """F.linear, or the same GEMM on the weight prepacked once (CPU, pack_linear): the C++ panel
    GEMM on an fp32 PanelWeight (which carries b), oneDNN's on its blocked layout otherwise. Any row
    count, no packing per call."""
    if pack is None:
        return F.linear(x, w, b)
    if isinstance(pack, PanelWeight):
        return panel_linear(x, pack)
    return torch.ops.mkldnn._linear_pointwise(x, pack, b, "none", [], "")


def onednn_packing_available(w: torch.Tensor) -> bool:
    """Whether w's GEMMs can run through oneDNN on a prepacked copy: a CPU tensor in fp32 or bf16
    (bf16 only where the CPU has oneDNN's bf16 instructions), and a torch built with oneDNN that
    has its prepacked linear op."""
    return (w.device.type == "cpu" and w.dtype in (torch.float32, torch.bfloat16) and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and (w.dtype == torch.float32 or _onednn_packs(torch.bfloat16)))


@functools.cache
def _onednn_packs(dtype: torch.dtype) -> bool:
    """oneDNN refuses to pack bf16 on a CPU without AVX512-BW/VL/DQ or AVX-NE-CONVERT: ask it once."""
    try:
        torch.ops.mkldnn._reorder_linear_weight(torch.zeros(16, 16, dtype=dtype), None)
        return True
    except RuntimeError:
        return False


def cpu_packing(w: torch.Tensor) -> str | None:
    """How pack_linear packs w: "panel" (fp32 on a CPU, the C++ kernels built), "onednn" (bf16, or
    no compiler), None (not a CPU weight, or neither is available)."""
    if w.device.type == "cpu" and w.dtype == torch.float32 and panel_gemm_available():
        return "panel"
    return "onednn" if onednn_packing_available(w) else None


def pack_linear(w: torch.Tensor, b: torch.Tensor | None = None):
    """w ([out, in]) packed once for _linear (any row count): a PanelWeight (holding b) for the C++
    panel GEMM, or oneDNN's blocked layout (b then stays the caller's)."""
    if cpu_packing(w) == "panel":
        return PanelWeight(w, b)
    return torch.ops.mkldnn._reorder_linear_weight(w, None)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """x: [T, heads, d]; cos/sin_signed: [T, 1, d]. transformers' x*cos + rotate_half(x)*sin, where
    rotate_half(x) = [-x2, x1]: roll(x) = [x2, x1] times sin_signed = [-sin1, sin2] is the same
    product (negation is exact), so the same bits in four ops instead of eight. (addcmul would
    fuse the multiply-add and round differently.)"""
    out = x * cos
    out += torch.roll(x, x.shape[-1] // 2, -1).mul_(sin_signed)
    return out


class Attention(nn.Module):
    """Parameters of one attention block (fused q/k/v: one matmul instead of three)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        q_size, kv_size = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
        self.qkv_proj = nn.Linear(cfg.hidden_size, q_size + 2 * kv_size, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(q_size, cfg.hidden_size, bias=False)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None


class MLP(nn.Module):
    """Parameters of one MLP (fused gate+up)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_up_proj = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)


class DecoderLayer(nn.Module):
    """Parameters of one decoder layer; LlamaForCausalLM.forward runs it."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def flat(self) -> tuple:
        a, m = self.self_attn, self.mlp
        return (self.input_layernorm.weight, a.qkv_proj.weight, a.qkv_proj.bias, a.o_proj.weight,
                a.q_norm, a.k_norm, self.post_attention_layernorm.weight, m.gate_up_proj.weight, m.down_proj.weight)


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg: ModelConfig, max_positions: int):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.max_positions = max_positions
        self.tie_weights()
        self.register_buffer("rope_cos", torch.empty(max_positions, cfg.head_dim), persistent=False)
        self.register_buffer("rope_sin", torch.empty(max_positions, cfg.head_dim), persistent=False)  # signed
        self._flat: list[tuple] | None = None  # per-layer parameter tuples, read by forward()
        # CPU: every linear weight prepacked once for oneDNN's GEMM (pack_cpu_weights): per-layer
        # (qkv, o, gate_up, down) packs and the LM head's
        self._packed: tuple[list[tuple], torch.Tensor] | None = None
        # engine.torch.triton_kernels when the GPU path runs its fused kernels (set by the model
        # runner); None: the torch ops
        self.triton = None

    def tie_weights(self) -> None:
        if self.cfg.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def init_rope(self, device) -> None:
        """cos/sin tables for every position, in fp32 (cast to the compute dtype per step, as
        transformers does); sin with its first half negated, for apply_rope."""
        inv_freq, scaling = rope_inv_freq(self.cfg)
        freqs = torch.arange(self.max_positions, dtype=torch.float32)[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        sin = emb.sin() * scaling
        sin[:, : sin.shape[1] // 2].neg_()
        self.rope_cos = (emb.cos() * scaling).to(device)
        self.rope_sin = sin.to(device)

    @torch.no_grad()
    def init_random(self, std: float = 0.02, seed: int = 0) -> None:
        """Random weights (benchmarks of a model shape, unit tests); norms start at one."""
        gen = torch.Generator(device=self.embed_tokens.weight.device).manual_seed(seed)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, std, generator=gen)

    def pack_cpu_weights(self, free_plain: bool = True) -> bool:
        """Prepack every linear weight once (CPU), so no GEMM reorders its weight per call. fp32:
        panels for the C++ panel GEMM (engine/torch/csrc/gemm.cpp), which on SmolLM2's shapes (all
        30 layers and the LM head, streamed from memory) takes 0.71-0.95 of the time oneDNN's GEMM on
        its own prepacked weights takes, from 1 to 1,024 rows (tests/perf/bench_torch_cpu.py --only
        gemm); bf16, or no C++ compiler: oneDNN's blocked layout (0.46-0.66 of MKL's sgemm time).
        free_plain: drop the plain copies of the layer weights (not read again on the CPU; the tied
        embedding table stays), so the model does not hold its weights twice. Returns whether it
        packed."""
        w = self.embed_tokens.weight
        if self._packed is not None:
            return True
        if cpu_packing(w) is None:
            return False
        with torch.no_grad():
            layers = [(pack_linear(a.qkv_proj.weight, a.qkv_proj.bias), pack_linear(a.o_proj.weight),
                       pack_linear(m.gate_up_proj.weight), pack_linear(m.down_proj.weight))
                      for a, m in ((layer.self_attn, layer.mlp) for layer in self.layers)]
            self._packed = (layers, pack_linear(self.lm_head.weight))
            if free_plain:
                for layer in self.layers:
                    for lin in (layer.self_attn.qkv_proj, layer.self_attn.o_proj, layer.mlp.gate_up_proj,
                                layer.mlp.down_proj):
                        lin.weight.data = lin.weight.data.new_empty((0,))
                if not self.cfg.tie_word_embeddings:
                    self.lm_head.weight.data = self.lm_head.weight.data.new_empty((0,))
        return True

    def forward(self, input_ids, positions, kv_cache, meta: AttentionMetadata, num_layers: int | None = None) -> torch.Tensor:
        """Hidden states after the final norm for every packed token: [T, hidden]. One flat loop
        over plain tensor ops (no module calls): at batch 1 on a CPU the step is per-op overhead
        as much as weight reads. num_layers < all: self-speculation's draft pass, which writes the
        same keys and values those layers write in the full pass."""
        if self._flat is None:
            self._flat = [layer.flat() for layer in self.layers]
        if self.triton is not None:
            return self._forward_fused(input_ids, positions, kv_cache, meta, num_layers)
        x = self.embed_tokens(input_ids)
        cos = self.rope_cos.index_select(0, positions).to(x.dtype).unsqueeze(1)
        sin = self.rope_sin.index_select(0, positions).to(x.dtype).unsqueeze(1)
        k_caches, v_caches = kv_cache[0].unbind(0), kv_cache[1].unbind(0)
        packed = self._packed[0] if self._packed is not None else None
        for i in range(len(self._flat) if num_layers is None else num_layers):
            x = self._layer(x, i, packed[i] if packed is not None else None, cos, sin, k_caches[i], v_caches[i], meta)
        return self.norm(x)

    def _layer(self, x, i: int, packs: tuple | None, cos, sin, k_cache, v_cache, meta: AttentionMetadata):
        c = self.cfg
        w_in, w_qkv, b_qkv, w_o, q_norm, k_norm, w_post, w_gate_up, w_down = self._flat[i]
        heads, kvh, d, eps, inter = c.num_heads, c.num_kv_heads, c.head_dim, c.rms_norm_eps, c.intermediate_size
        q_size, qk_size, t = heads * d, (heads + kvh) * d, x.shape[0]
        p_qkv, p_o, p_gate_up, p_down = packs or (None, None, None, None)
        qkv = _linear(rms_norm(x, w_in, eps), w_qkv, b_qkv, p_qkv)
        if q_norm is None:  # q and k side by side are one [T, heads + kv_heads, d] view: rotate once
            qk = apply_rope(qkv[:, :qk_size].view(t, -1, d), cos, sin)
            q, k = qk[:, :heads], qk[:, heads:]
        else:
            q = apply_rope(q_norm(qkv[:, :q_size].view(t, heads, d)), cos, sin)
            k = apply_rope(k_norm(qkv[:, q_size:qk_size].view(t, kvh, d)), cos, sin)
        v = qkv[:, qk_size:].view(t, kvh, d)
        store_kv(k, v, k_cache, v_cache, meta.slot_mapping)
        o = paged_attention(q, k, v, k_cache, v_cache, meta, d**-0.5)
        # residual adds land in the fresh sublayer outputs (a + b == b + a, bit for bit)
        h = _linear(o.reshape(t, q_size), w_o, None, p_o)
        h += x
        gate_up = _linear(rms_norm(h, w_post, eps), w_gate_up, None, p_gate_up)
        out = _linear(F.silu(gate_up[:, :inter]).mul_(gate_up[:, inter:]), w_down, None, p_down)
        out += h
        return out

    def _forward_fused(self, input_ids, positions, kv_cache, meta: AttentionMetadata, num_layers: int | None):
        """forward() through the Triton kernels: each residual add fused into the norm after it
        (vLLM's layout: a layer hands on its MLP output and the residual stream), rope in place in
        the fused q/k/v output, the KV write by slot and SiLU-mul in one pass each. The same
        roundings as the torch ops, so bf16 results agree with them to the last bit or two."""
        tk = self.triton
        c = self.cfg
        heads, kvh, d, eps, t = c.num_heads, c.num_kv_heads, c.head_dim, c.rms_norm_eps, input_ids.shape[0]
        q_size, qk_size, scale = heads * d, (heads + kvh) * d, d**-0.5
        k_caches, v_caches = kv_cache[0].unbind(0), kv_cache[1].unbind(0)
        x = self.embed_tokens(input_ids)
        residual = None
        for i in range(len(self._flat) if num_layers is None else num_layers):
            w_in, w_qkv, b_qkv, w_o, q_norm, k_norm, w_post, w_gate_up, w_down = self._flat[i]
            # the CPU (Triton's interpreter) keeps only the packed weights
            p_qkv, p_o, p_gate_up, p_down = self._packed[0][i] if self._packed is not None else (None,) * 4
            if residual is None:
                n, residual = tk.rms_norm(x, w_in, eps), x
            else:
                n, residual = tk.rms_norm(x, w_in, eps, residual=residual)
            qkv = _linear(n, w_qkv, b_qkv, p_qkv)
            if q_norm is None:  # q and k side by side: one in-place rotation of both
                tk.rope_(qkv[:, :qk_size].view(t, heads + kvh, d), positions, self.rope_cos, self.rope_sin)
                q, k = qkv[:, :q_size].view(t, heads, d), qkv[:, q_size:qk_size].view(t, kvh, d)
            else:
                q = tk.rope_(tk.rms_norm(qkv[:, :q_size].reshape(t * heads, d), q_norm.weight, eps).view(t, heads, d),
                             positions, self.rope_cos, self.rope_sin)
                k = tk.rope_(tk.rms_norm(qkv[:, q_size:qk_size].reshape(t * kvh, d), k_norm.weight, eps).view(t, kvh, d),
                             positions, self.rope_cos, self.rope_sin)
            v = qkv[:, qk_size:].view(t, kvh, d)
            tk.store_kv(k, v, k_caches[i], v_caches[i], meta.slot_mapping)
            o = paged_attention(q, k, v, k_caches[i], v_caches[i], meta, scale)
            h = _linear(o.reshape(t, q_size), w_o, None, p_o)
            n, residual = tk.rms_norm(h, w_post, eps, residual=residual)
            x = _linear(tk.silu_mul(_linear(n, w_gate_up, None, p_gate_up)), w_down, None, p_down)
        return tk.rms_norm(x, self.norm.weight, eps, residual=residual)[0]

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        pack = self._packed[1] if self._packed is not None else None
        return _linear(hidden, self.lm_head.weight, None, pack).float()

    def load_hf_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy a transformers-named state dict in, fusing q/k/v and gate/up as it goes."""
        own = dict(self.named_parameters())
        done: set[str] = set()

        def put(name: str, value: torch.Tensor) -> None:
            p = own[name]
            if p.shape != value.shape:
                raise EngineError(f"weight {name}: shape {tuple(value.shape)}, model expects {tuple(p.shape)}")
            with torch.no_grad():
                p.copy_(value)
            done.add(name)

        def get(key: str) -> torch.Tensor:
            if key not in tensors:
                raise EngineError(f"weight {key} is missing from the checkpoint")
            return tensors[key]

        put("embed_tokens.weight", get("model.embed_tokens.weight"))
        put("norm.weight", get("model.norm.weight"))
        if not self.cfg.tie_word_embeddings:
            put("lm_head.weight", get("lm_head.weight"))
        for i in range(self.cfg.num_layers):
            hf, me = f"model.layers.{i}.", f"layers.{i}."
            a = hf + "self_attn."
            put(me + "self_attn.qkv_proj.weight", torch.cat([get(a + f"{n}_proj.weight") for n in "qkv"]))
            if self.cfg.attention_bias:
                put(me + "self_attn.qkv_proj.bias", torch.cat([get(a + f"{n}_proj.bias") for n in "qkv"]))
            put(me + "self_attn.o_proj.weight", get(a + "o_proj.weight"))
            if self.cfg.qk_norm:
                put(me + "self_attn.q_norm.weight", get(a + "q_norm.weight"))
                put(me + "self_attn.k_norm.weight", get(a + "k_norm.weight"))
            m = hf + "mlp."
            put(me + "mlp.gate_up_proj.weight", torch.cat([get(m + "gate_proj.weight"), get(m + "up_proj.weight")]))
            put(me + "mlp.down_proj.weight", get(m + "down_proj.weight"))
            put(me + "input_layernorm.weight", get(hf + "input_layernorm.weight"))
            put(me + "post_attention_layernorm.weight", get(hf + "post_attention_layernorm.weight"))
        missing = set(own) - done - ({"lm_head.weight"} if self.cfg.tie_word_embeddings else set())
        assert not missing, f"weights not loaded: {sorted(missing)[:5]}"
