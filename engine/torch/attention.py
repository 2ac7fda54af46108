"""Attention over the paged KV cache: write the step's keys/values into their slots, then attend
(the C++ kernel on a CPU, the Triton kernel on a GPU, per-step decode groups, the batched torch
reference, or SDPA per prefill chunk)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from engine.torch.cpu_kernels import paged_attention_rows


@dataclass(slots=True)
class PrefillChunk:
    start: int  # first row of this chunk in the packed token batch
    num_tokens: int  # query tokens in this step
    context_len: int  # tokens attended to: cached/earlier ones + this chunk
    block_table: torch.Tensor | None  # blocks to read; None when the chunk is the whole context
    mask: torch.Tensor | None = None  # [n, context_len] causal mask, built once per step (all layers share it)


@dataclass(slots=True)
class DecodeGroup:
    """Decode rows start..end, attended to together. Built once per step, read by every layer:
    either one sequence whose blocks are consecutive (`first_block`: attend to a view of the
    cache, nothing copied, nothing masked) or gathered blocks with a precomputed additive mask."""

    start: int
    end: int
    context_len: int  # the widest row's context (the only row's, for a view)
    first_block: int = -1  # >= 0: the view case
    block_ids: torch.Tensor | None = None  # [rows * width] flattened block table
    mask: torch.Tensor | None = None  # [rows, 1, 1, width * block_size] additive (0 or -inf)


@dataclass(slots=True)
class KernelRows:
    """The rows a paged kernel attends for (decode rows, short chunks), built once per step: the
    C++ one on a CPU, or the Triton one (also inside a CUDA graph, over its static buffers)."""

    fn: object  # the loaded C++ kernel (engine.torch.cpu_kernels.paged_attention_kernel()), or None
    tables: torch.Tensor  # [S, W] int64 block ids of the sequences those rows belong to
    row_seq: torch.Tensor  # [T] which table each packed row reads
    row_ctx: torch.Tensor  # [T] tokens the row attends to, its own included; 0: a long chunk's row
    triton: object = None  # engine.torch.triton_kernels, when it is the Triton kernel's rows
    num_splits: int = 1  # the Triton kernel's split-K over each row's context
    row_lead: torch.Tensor | None = None  # [T] Triton: rows a program takes from this one (triton_kernels.row_leads)


@dataclass(slots=True)
class AttentionMetadata:
    """What one step's attention needs. Decode tokens come first in the packed batch."""

    slot_mapping: torch.Tensor  # [T] flat cache slot of every packed token
    num_decode: int = 0
    decode_block_tables: torch.Tensor | None = None  # [num_decode, width] block ids (padding: any valid id)
    decode_context_lens: torch.Tensor | None = None  # [num_decode] tokens each decode attends to
    # CPU: decode rows in groups of similar length, each small enough that its gathered keys and
    # values are still in cache when SDPA reads them
    decode_groups: list[DecodeGroup] | None = None
    prefills: list[PrefillChunk] = field(default_factory=list)
    kernel_rows: KernelRows | None = None  # CPU fp32 with the kernel built: rows it attends for


def store_kv(k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor) -> None:
    """k, v: [T, kv_heads, d]; caches: [kv_heads, num_blocks, block_size, d] (head-major, so a
    gathered sequence is already the [heads, length, d] layout SDPA reads fastest)."""
    kvh, nb, bs, d = k_cache.shape
    k_cache.view(kvh, nb * bs, d).index_copy_(1, slots, k.transpose(0, 1))
    v_cache.view(kvh, nb * bs, d).index_copy_(1, slots, v.transpose(0, 1))


def gather_blocks(cache: torch.Tensor, block_ids: torch.Tensor) -> torch.Tensor:
    """[kv_heads, len(block_ids) * block_size, d]. index_select copies whole rows; plain advanced
    indexing is many times slower on the CPU."""
    kvh, _, bs, d = cache.shape
    return cache.index_select(1, block_ids.reshape(-1)).view(kvh, -1, d)


def decode_attention_ref(q, k_cache, v_cache, block_tables, context_lens, scale: float) -> torch.Tensor:
    """Paged decode attention in plain torch. q: [B, heads, d] -> [B, heads, d].
    Query heads are grouped per KV head into the query-length axis, so GQA needs no repeat."""
    b, heads, d = q.shape
    kvh, _, bs, _ = k_cache.shape
    length = block_tables.shape[1] * bs
    k = gather_blocks(k_cache, block_tables).view(kvh, b, length, d).transpose(0, 1)
    v = gather_blocks(v_cache, block_tables).view(kvh, b, length, d).transpose(0, 1)
    mask = torch.arange(length, device=q.device)[None, :] < context_lens[:, None]
    qg = q.view(b, kvh, heads // kvh, d)
    o = F.scaled_dot_product_attention(qg, k, v, attn_mask=mask.view(b, 1, 1, length), scale=scale)
    return o.reshape(b, heads, d)


def decode_attention_group(q, k_cache, v_cache, g: DecodeGroup, scale: float) -> torch.Tensor:
    """decode_attention_ref for one precomputed group. q: [rows, heads, d] -> [rows, heads, d]."""
    b, heads, d = q.shape
    kvh, _, bs, _ = k_cache.shape
    qg = q.view(b, kvh, heads // kvh, d)
    if g.first_block >= 0:  # consecutive blocks: a view of exactly the context, no mask needed
        n = -(-g.context_len // bs)
        k = k_cache[:, g.first_block : g.first_block + n].reshape(1, kvh, n * bs, d)[:, :, : g.context_len]
        v = v_cache[:, g.first_block : g.first_block + n].reshape(1, kvh, n * bs, d)[:, :, : g.context_len]
        return F.scaled_dot_product_attention(qg, k, v, scale=scale).reshape(b, heads, d)
    length = g.mask.shape[-1]
    k = k_cache.index_select(1, g.block_ids).view(kvh, b, length, d).transpose(0, 1)
    v = v_cache.index_select(1, g.block_ids).view(kvh, b, length, d).transpose(0, 1)
    o = F.scaled_dot_product_attention(qg, k, v, attn_mask=g.mask, scale=scale)
    return o.reshape(b, heads, d)


def prefill_attention(q, k, v, k_cache, v_cache, chunk: PrefillChunk, scale: float) -> torch.Tensor:
    """One sequence's chunk. q: [n, heads, d]; k, v: [n, kv_heads, d] (this chunk's own keys).
    SDPA gets 4-d [1, heads, n, d] inputs: 3-d ones take a path ~4x slower on a CPU (torch 2.13), and
    enable_gqa lets query heads share their KV head without copying it heads/kv_heads times."""
    if chunk.block_table is not None:  # earlier tokens live in the cache: read them all from there
        ctx = chunk.context_len
        kt = gather_blocks(k_cache, chunk.block_table)[:, :ctx]
        vt = gather_blocks(v_cache, chunk.block_table)[:, :ctx]
    else:
        kt, vt = k.transpose(0, 1), v.transpose(0, 1)
    qt, kt, vt = q.transpose(0, 1).unsqueeze(0), kt.unsqueeze(0), vt.unsqueeze(0)
    gqa = q.shape[1] != k.shape[1]
    if chunk.block_table is None:
        o = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, scale=scale, enable_gqa=gqa)
    else:
        mask = chunk.mask if chunk.mask is not None else causal_mask(q.shape[0], chunk.context_len, q.device)
        o = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, scale=scale, enable_gqa=gqa)
    return o[0].transpose(0, 1)


def causal_mask(n: int, ctx: int, device) -> torch.Tensor:
    """[n, ctx] bool: the chunk's last n tokens each see the context up to themselves."""
    rows = torch.arange(ctx - n, ctx, device=device)[:, None]
    return torch.arange(ctx, device=device)[None, :] <= rows


def paged_attention(q, k, v, k_cache, v_cache, meta: AttentionMetadata, scale: float) -> torch.Tensor:
    """Decode rows and short chunks (speculative verify rows) go to a paged kernel in one call per
    layer: the C++ one on a CPU (engine/torch/cpu_kernels.py), the Triton one on a GPU
    (engine/torch/triton_kernels.py). Without a kernel they attend in groups prepared once per step
    (a view of consecutive blocks, or one gather + SDPA) on a CPU, or through the batched-gather
    torch reference on a GPU (kernels="torch"; it also tests the kernels). Long prefill chunks
    attend per sequence through SDPA."""
    kr = meta.kernel_rows
    if kr is not None:  # every row is either the kernel's or part of a long prefill chunk
        out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        if kr.triton is not None:
            kr.triton.paged_attention(q, k_cache, v_cache, kr.tables, kr.row_seq, kr.row_ctx, out, scale, kr.num_splits,
                                      kr.row_lead)
        else:
            paged_attention_rows(kr.fn, q, k_cache, v_cache, kr.tables, kr.row_seq, kr.row_ctx, out, scale)
        for c in meta.prefills:
            s, e = c.start, c.start + c.num_tokens
            out[s:e] = prefill_attention(q[s:e], k[s:e], v[s:e], k_cache, v_cache, c, scale)
        return out
    nd = meta.num_decode
    groups = meta.decode_groups
    if not meta.prefills:
        if groups is None:
            return decode_attention_ref(q, k_cache, v_cache, meta.decode_block_tables, meta.decode_context_lens, scale)
        if len(groups) == 1:  # batch-1 decode and other small batches: no copy into `out`
            return decode_attention_group(q, k_cache, v_cache, groups[0], scale)
    out = torch.empty_like(q)
    if groups is not None:
        for g in groups:
            out[g.start : g.end] = decode_attention_group(q[g.start : g.end], k_cache, v_cache, g, scale)
    elif nd:
        out[:nd] = decode_attention_ref(
            q[:nd], k_cache, v_cache, meta.decode_block_tables, meta.decode_context_lens, scale
        )
    for c in meta.prefills:
        s, e = c.start, c.start + c.num_tokens
        out[s:e] = prefill_attention(q[s:e], k[s:e], v[s:e], k_cache, v_cache, c, scale)
    return out
