"""Attention over the paged KV cache: write the step's keys/values into their slots, then attend.
Decode tokens go through one batched gather + SDPA (the torch reference, CUDA-graph safe); prefill
chunks attend per sequence with SDPA (causal, bottom-right aligned when a cached prefix precedes)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass(slots=True)
class PrefillChunk:
    start: int  # first row of this chunk in the packed token batch
    num_tokens: int  # query tokens in this step
    context_len: int  # tokens attended to: cached/earlier ones + this chunk
    block_table: torch.Tensor | None  # blocks to read; None when the chunk is the whole context


@dataclass(slots=True)
class AttentionMetadata:
    """What one step's attention needs. Decode tokens come first in the packed batch."""

    slot_mapping: torch.Tensor  # [T] flat cache slot of every packed token
    num_decode: int = 0
    decode_block_tables: torch.Tensor | None = None  # [num_decode, width] block ids (padding: any valid id)
    decode_context_lens: torch.Tensor | None = None  # [num_decode] tokens each decode attends to
    # CPU: decode rows in groups of similar length (row_start, row_end, block_tables, context_lens),
    # each small enough that its gathered keys/values are still in cache when SDPA reads them
    decode_groups: list[tuple[int, int, torch.Tensor, torch.Tensor]] | None = None
    prefills: list[PrefillChunk] = field(default_factory=list)


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


def prefill_attention(q, k, v, k_cache, v_cache, chunk: PrefillChunk, scale: float) -> torch.Tensor:
    """One sequence's chunk. q: [n, heads, d]; k, v: [n, kv_heads, d] (this chunk's own keys)."""
    n, heads, d = q.shape
    kvh = k.shape[1]
    if chunk.block_table is not None:  # earlier tokens live in the cache: read them all from there
        ctx = chunk.context_len
        kt = gather_blocks(k_cache, chunk.block_table)[:, :ctx]
        vt = gather_blocks(v_cache, chunk.block_table)[:, :ctx]
    else:
        kt, vt = k.transpose(0, 1), v.transpose(0, 1)
    g = heads // kvh
    if g > 1:
        kt = kt.repeat_interleave(g, dim=0)
        vt = vt.repeat_interleave(g, dim=0)
    qt = q.transpose(0, 1)
    if chunk.block_table is None:
        o = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, scale=scale)
    else:
        ctx = chunk.context_len
        rows = torch.arange(ctx - n, ctx, device=q.device)[:, None]
        mask = torch.arange(ctx, device=q.device)[None, :] <= rows
        o = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask, scale=scale)
    return o.transpose(0, 1)


def paged_attention(q, k, v, k_cache, v_cache, meta: AttentionMetadata, scale: float) -> torch.Tensor:
    nd = meta.num_decode
    if not meta.prefills and meta.decode_groups is None:
        return decode_attention_ref(q, k_cache, v_cache, meta.decode_block_tables, meta.decode_context_lens, scale)
    out = torch.empty_like(q)
    if meta.decode_groups is not None:
        for a, b, tables, lens in meta.decode_groups:
            out[a:b] = decode_attention_ref(q[a:b], k_cache, v_cache, tables, lens, scale)
    elif nd:
        out[:nd] = decode_attention_ref(
            q[:nd], k_cache, v_cache, meta.decode_block_tables, meta.decode_context_lens, scale
        )
    for c in meta.prefills:
        s, e = c.start, c.start + c.num_tokens
        out[s:e] = prefill_attention(q[s:e], k[s:e], v[s:e], k_cache, v_cache, c, scale)
    return out
