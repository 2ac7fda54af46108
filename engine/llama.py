"""The Llama family (Llama, Mistral, Qwen2, Qwen3, SmolLM2) as one flat-token model over a paged
KV cache: every step is a packed list of tokens from many sequences, as in vLLM."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.attention import AttentionMetadata, paged_attention, store_kv
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


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            # one fused op instead of six; in fp32 it gives transformers' formula bit for bit
            return torch.rms_norm(x, self.weight.shape, self.weight, self.eps)
        # transformers' formula, op for op: upcast, normalize, cast back, scale
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [T, heads, d]; cos/sin: [T, 1, d]. rotate_half form, as in transformers (same products
    and sum, so the same bits; addcmul would fuse them and round differently)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((x[..., half:], x[..., :half]), dim=-1)
    rotated[..., :half].neg_()
    out = x * cos
    out += rotated * sin
    return out


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_size = cfg.num_heads * cfg.head_dim
        self.kv_size = cfg.num_kv_heads * cfg.head_dim
        # fused q/k/v: one matmul instead of three
        self.qkv_proj = nn.Linear(cfg.hidden_size, self.q_size + 2 * self.kv_size, bias=cfg.attention_bias)
        self.o_proj = nn.Linear(self.q_size, cfg.hidden_size, bias=False)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.scale = cfg.head_dim**-0.5

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache, meta: AttentionMetadata):
        t = x.shape[0]
        qkv = self.qkv_proj(x)
        v = qkv[:, self.q_size + self.kv_size :].view(t, self.num_kv_heads, self.head_dim)
        if self.q_norm is None:
            # q and k side by side are one [T, heads + kv_heads, d] view: rotate them in one go
            qk = apply_rope(qkv[:, : self.q_size + self.kv_size].view(t, -1, self.head_dim), cos, sin)
            q, k = qk[:, : self.num_heads], qk[:, self.num_heads :]
        else:
            q, k, _ = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
            q = self.q_norm(q.view(t, self.num_heads, self.head_dim))
            k = self.k_norm(k.view(t, self.num_kv_heads, self.head_dim))
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k_cache, v_cache = kv_cache[0][self.layer_idx], kv_cache[1][self.layer_idx]
        store_kv(k, v, k_cache, v_cache, meta.slot_mapping)
        o = paged_attention(q, k, v, k_cache, v_cache, meta, self.scale)
        return self.o_proj(o.reshape(t, self.q_size))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.inter = cfg.intermediate_size
        self.gate_up_proj = nn.Linear(cfg.hidden_size, 2 * cfg.intermediate_size, bias=False)  # fused gate+up
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).split(self.inter, dim=-1)
        return self.down_proj(F.silu(gate).mul_(up))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, layer_idx)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin, kv_cache, meta):
        # residual adds land in the fresh sublayer outputs (a + b == b + a, bit for bit): no new
        # tensors, and the caller's x is left alone
        h = self.self_attn(self.input_layernorm(x), cos, sin, kv_cache, meta)
        h += x
        out = self.mlp(self.post_attention_layernorm(h))
        out += h
        return out


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg: ModelConfig, max_positions: int):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.max_positions = max_positions
        self.tie_weights()
        self.register_buffer("rope_cos", torch.empty(max_positions, cfg.head_dim), persistent=False)
        self.register_buffer("rope_sin", torch.empty(max_positions, cfg.head_dim), persistent=False)

    def tie_weights(self) -> None:
        if self.cfg.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def init_rope(self, device) -> None:
        """cos/sin tables for every position, in fp32 (cast to the compute dtype per step, as
        transformers does)."""
        inv_freq, scaling = rope_inv_freq(self.cfg)
        freqs = torch.arange(self.max_positions, dtype=torch.float32)[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        self.rope_cos = (emb.cos() * scaling).to(device)
        self.rope_sin = (emb.sin() * scaling).to(device)

    @torch.no_grad()
    def init_random(self, std: float = 0.02, seed: int = 0) -> None:
        """Random weights (benchmarks of a model shape, unit tests); norms start at one."""
        gen = torch.Generator(device=self.embed_tokens.weight.device).manual_seed(seed)
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, std, generator=gen)

    def forward(self, input_ids, positions, kv_cache, meta: AttentionMetadata) -> torch.Tensor:
        """Hidden states of the last layer for every packed token: [T, hidden]."""
        x = self.embed_tokens(input_ids)
        cos = self.rope_cos.index_select(0, positions).to(x.dtype).unsqueeze(1)
        sin = self.rope_sin.index_select(0, positions).to(x.dtype).unsqueeze(1)
        for layer in self.layers:
            x = layer(x, cos, sin, kv_cache, meta)
        return self.norm(x)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden).float()

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
