"""The GPU path's Triton kernels: paged decode/verify attention read through the block table (GQA,
a verify chunk's rows in one program, online softmax, split-K with a reduce pass), the paged KV write, and the fused RMSNorm(+residual),
rope and SiLU-mul around it. Imported only when the torch engine picks them (engine/torch/kernels.py):
the engine runs without triton, and on a CPU these run under the interpreter (TRITON_INTERPRET=1).

Written against triton 3.6's language (tl.dot with input_precision, dynamic-bound loops)."""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

# tokens of one sequence read per loop iteration (any page size: each token finds its block)
BLOCK_N = 32
MAX_SPLITS = 32
_LOG2E = 1.4426950408889634
_INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"  # read by triton at import, too


@triton.jit
def _paged_attention_kernel(
    Q, K, V, Tables, RowSeq, RowCtx, RowLead, Out, PartOut, PartLse,
    scale_log2, num_splits,
    stride_qt, stride_qh, stride_kh, stride_kb, stride_ks, stride_tt, stride_ot, stride_oh,
    stride_pt, stride_ph, stride_ps, stride_lt, stride_lh,
    GROUP: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_D: tl.constexpr, PAGE: tl.constexpr, BLOCK_N: tl.constexpr, IS_SPLIT: tl.constexpr,
    PRECISION: tl.constexpr, UPCAST: tl.constexpr,
):
    """One program: up to BLOCK_Q consecutive query rows of one sequence (RowLead[t] of them from
    row t; 0: row t is another program's), one KV head, one split of the context. The M dimension
    of the dots is rows x the GROUP query heads sharing the KV head, so a verify chunk's rows read
    the sequence's keys and values once, not once per row. Row r attends to its first RowCtx[r]
    tokens: a decode row to its whole sequence, a verify row causally up to itself."""
    t = tl.program_id(0)
    kvh = tl.program_id(1).to(tl.int64)  # offsets into a cache of many GB: 64-bit
    split = tl.program_id(2)
    nq = tl.load(RowLead + t)
    seq = tl.load(RowSeq + t).to(tl.int64)
    offs_m = tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    qi = offs_m // GROUP  # which of the program's rows
    mask_m = (offs_m < BLOCK_Q * GROUP) & (qi < nq)
    mask_d = offs_d < HEAD_DIM
    rows = (t + qi).to(tl.int64)
    heads = (kvh * GROUP + offs_m % GROUP).to(tl.int32)
    ctx_m = tl.load(RowCtx + rows, mask=mask_m, other=0)
    ctx = tl.max(ctx_m, 0)  # the chunk's last row: causal rows only add tokens
    q = tl.load(Q + rows[:, None] * stride_qt + heads[:, None] * stride_qh + offs_d[None, :],
                mask=mask_m[:, None] & mask_d[None, :], other=0.0)
    # this split's share of the context, whole tiles each (a row shorter than the splits leaves
    # the last programs empty; the reduce pass weights those by zero)
    per = tl.cdiv(tl.cdiv(ctx, num_splits), BLOCK_N) * BLOCK_N
    lo = split * per
    hi = tl.minimum(lo + per, ctx)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for start in range(lo, hi, BLOCK_N):
        pos = start + offs_n
        mask_n = pos < hi
        block = tl.load(Tables + seq * stride_tt + pos // PAGE, mask=mask_n, other=0).to(tl.int64)
        off = kvh * stride_kh + block * stride_kb + (pos % PAGE) * stride_ks
        kv_mask = mask_n[:, None] & mask_d[None, :]
        k = tl.load(K + off[:, None] + offs_d[None, :], mask=kv_mask, other=0.0)
        if UPCAST:  # the interpreter's dot misreads bf16 operands: give it their exact fp32 values
            s = tl.dot(q.to(tl.float32), tl.trans(k.to(tl.float32)), input_precision="ieee") * scale_log2
        else:
            s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale_log2
        s = tl.where(mask_n[None, :] & (pos[None, :] < ctx_m[:, None]), s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new > float("-inf"), m_new, 0.0)  # a row with nothing yet: no NaN
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(s - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(V + off[:, None] + offs_d[None, :], mask=kv_mask, other=0.0)
        pv = p.to(v.dtype)
        if UPCAST:
            acc = acc * alpha[:, None] + tl.dot(pv.to(tl.float32), v.to(tl.float32), input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(pv, v, input_precision=PRECISION)
        m_i = m_new
    filled = l_i > 0
    o = acc / tl.where(filled, l_i, 1.0)[:, None]
    live = mask_m & (ctx_m > 0)
    if IS_SPLIT:
        tl.store(PartOut + rows[:, None] * stride_pt + heads[:, None] * stride_ph + split * stride_ps + offs_d[None, :],
                 o, mask=live[:, None] & mask_d[None, :])
        lse = tl.where(filled, m_i + tl.log2(tl.where(filled, l_i, 1.0)), float("-inf"))
        tl.store(PartLse + rows * stride_lt + heads * stride_lh + split, lse, mask=live)
    else:
        tl.store(Out + rows[:, None] * stride_ot + heads[:, None] * stride_oh + offs_d[None, :],
                 o.to(Out.dtype.element_ty), mask=live[:, None] & mask_d[None, :])


@triton.jit
def _split_reduce_kernel(
    PartOut, PartLse, RowCtx, Out, num_splits,
    stride_pt, stride_ph, stride_ps, stride_lt, stride_lh, stride_ot, stride_oh,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr,
):
    """Merge one (row, head)'s split partials by their log-sum-exps (log2 domain)."""
    t = tl.program_id(0)
    h = tl.program_id(1)
    ctx = tl.load(RowCtx + t)
    offs_s = tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_D)
    mask_s = offs_s < num_splits
    mask_d = offs_d < HEAD_DIM
    lse = tl.load(PartLse + t.to(tl.int64) * stride_lt + h * stride_lh + offs_s, mask=mask_s, other=float("-inf"))
    m = tl.max(lse, 0)
    w = tl.where(mask_s & (lse > float("-inf")), tl.exp2(lse - m), 0.0)
    part = tl.load(PartOut + t.to(tl.int64) * stride_pt + h * stride_ph + offs_s[:, None] * stride_ps + offs_d[None, :],
                   mask=(w > 0)[:, None] & mask_d[None, :], other=0.0)
    o = tl.sum(part * w[:, None], 0) / tl.sum(w, 0)
    tl.store(Out + t.to(tl.int64) * stride_ot + h * stride_oh + offs_d, o.to(Out.dtype.element_ty),
             mask=mask_d & (offs_d * 0 + ctx > 0))


def num_splits_for(rows: int, kv_heads: int, max_context: int, sm_count: int) -> int:
    """Split the context when rows x KV heads programs would leave most of the GPU idle and the
    context is long enough to share out (a power of two, so a few compiled variants serve all)."""
    programs = rows * kv_heads
    if programs >= sm_count or max_context <= 2 * BLOCK_N:
        return 1
    want = min(-(-2 * sm_count // programs), -(-max_context // (4 * BLOCK_N)), MAX_SPLITS)
    n = 1
    while n < want:
        n *= 2
    return min(n, MAX_SPLITS)


def rows_per_program(group: int) -> int:
    """Query rows one program takes: as many as fill the 16-row M of a tensor-core dot with their
    GROUP heads each (a decode row alone costs the same; a verify chunk's rows then share reads)."""
    return max(1, 16 // group)


def row_leads(rows_of_chunks: list[int], group: int) -> list[int]:
    """Per packed row, how many rows its program takes from it (0: another program's row), for
    chunks of consecutive rows of one sequence each (decode rows: chunks of 1; 0 rows: skipped)."""
    per = rows_per_program(group)
    out: list[int] = []
    for n in rows_of_chunks:
        for i in range(n):
            out.append(min(per, n - i) if i % per == 0 else 0)
    return out


def paged_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, tables: torch.Tensor,
                    row_seq: torch.Tensor, row_ctx: torch.Tensor, out: torch.Tensor, scale: float,
                    num_splits: int = 1, row_lead: torch.Tensor | None = None) -> torch.Tensor:
    """out[t] = attention of q[t] ([heads, d]) over the first row_ctx[t] tokens of sequence
    row_seq[t] (block ids tables[row_seq[t]]); rows with row_ctx == 0 are left as they are.
    row_lead (row_leads()): which rows start a program over consecutive rows of one sequence;
    None: every row its own. q: [T, H, D] (last dim contiguous, any row stride); caches:
    [KVH, NB, BS, D]; out: [T, H, D]."""
    t, h, d = q.shape
    kvh, _, page, _ = k_cache.shape
    assert q.stride(2) == 1 and out.stride(2) == 1 and k_cache.stride(3) == 1 and v_cache.stride() == k_cache.stride()
    assert tables.stride(1) == 1 and h % kvh == 0
    if t == 0:
        return out
    group = h // kvh
    if row_lead is None:
        row_lead = (row_ctx > 0).to(row_ctx.dtype)
    block_q = rows_per_program(group)
    block_m = max(16, triton.next_power_of_2(block_q * group))
    block_d = max(16, triton.next_power_of_2(d))
    precision = "ieee" if q.dtype == torch.float32 else "tf32"
    split = num_splits > 1
    if split:
        part = torch.empty((t, h, num_splits, d), dtype=torch.float32, device=q.device)
        lse = torch.empty((t, h, num_splits), dtype=torch.float32, device=q.device)
    else:
        part, lse = out, row_ctx  # unused by the kernel in this variant
    _paged_attention_kernel[(t, kvh, num_splits)](
        q, k_cache, v_cache, tables, row_seq, row_ctx, row_lead, out, part, lse,
        scale * _LOG2E, num_splits,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), tables.stride(0),
        out.stride(0), out.stride(1),
        part.stride(0) if split else 0, part.stride(1) if split else 0, part.stride(2) if split else 0,
        lse.stride(0) if split else 0, lse.stride(1) if split else 0,
        GROUP=group, BLOCK_Q=block_q, BLOCK_M=block_m, HEAD_DIM=d, BLOCK_D=block_d, PAGE=page, BLOCK_N=BLOCK_N,
        IS_SPLIT=split, PRECISION=precision, UPCAST=_INTERPRETING and q.dtype != torch.float32,
    )
    if split:
        _split_reduce_kernel[(t, h)](
            part, lse, row_ctx, out, num_splits,
            part.stride(0), part.stride(1), part.stride(2), lse.stride(0), lse.stride(1), out.stride(0), out.stride(1),
            HEAD_DIM=d, BLOCK_D=block_d, BLOCK_S=max(2, triton.next_power_of_2(num_splits)),
        )
    return out


@triton.jit
def _store_kv_kernel(K, V, KC, VC, Slots, stride_kt, stride_kh, stride_vt, stride_vh, stride_ch, stride_cs,
                     KV_HEADS: tl.constexpr, BLOCK_KVH: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """One token's keys and values, every KV head, into its cache slot (slot < 0: not stored)."""
    t = tl.program_id(0)
    slot = tl.load(Slots + t).to(tl.int64)
    offs_h = tl.arange(0, BLOCK_KVH)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_h < KV_HEADS)[:, None] & (offs_d < HEAD_DIM)[None, :] & (offs_d * 0 + slot >= 0)[None, :]
    t64 = t.to(tl.int64)
    k = tl.load(K + t64 * stride_kt + offs_h[:, None] * stride_kh + offs_d[None, :], mask=mask)
    v = tl.load(V + t64 * stride_vt + offs_h[:, None] * stride_vh + offs_d[None, :], mask=mask)
    dst = offs_h.to(tl.int64)[:, None] * stride_ch + slot * stride_cs + offs_d[None, :]
    tl.store(KC + dst, k, mask=mask)
    tl.store(VC + dst, v, mask=mask)


def store_kv(k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor) -> None:
    """k, v: [T, KVH, D] (last dim contiguous); caches [KVH, NB, BS, D]; slots: [T] flat slot ids."""
    t, kvh, d = k.shape
    _, _, page, _ = k_cache.shape
    assert k.stride(2) == 1 and v.stride(2) == 1 and k_cache.stride(3) == 1 and k_cache.stride(1) == page * k_cache.stride(2)
    if t == 0:
        return
    _store_kv_kernel[(t,)](k, v, k_cache, v_cache, slots, k.stride(0), k.stride(1), v.stride(0), v.stride(1),
                           k_cache.stride(0), k_cache.stride(2), KV_HEADS=kvh,
                           BLOCK_KVH=triton.next_power_of_2(kvh), HEAD_DIM=d, BLOCK_D=triton.next_power_of_2(d))


@triton.jit
def _rms_norm_kernel(X, R, W, Y, ROut, stride_x, stride_r, stride_y, stride_ro, n, eps,
                     HAS_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr):
    """y = rms_norm(x [+ r]) * w for one row, rounding where transformers' ops round: the sum to
    the activation dtype, the normalized row to it, then the product with the weight."""
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(X + row * stride_x + offs, mask=mask, other=0.0)
    dtype = x.dtype
    x = x.to(tl.float32)
    if HAS_RESIDUAL:
        r = tl.load(R + row * stride_r + offs, mask=mask, other=0.0).to(tl.float32)
        x = (x + r).to(dtype).to(tl.float32)
        tl.store(ROut + row * stride_ro + offs, x.to(dtype), mask=mask)
    var = tl.sum(x * x, 0) / n
    xn = (x * tl.rsqrt(var + eps)).to(dtype).to(tl.float32)
    w = tl.load(W + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * stride_y + offs, (xn * w).to(dtype), mask=mask)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None):
    """rms_norm(x) * weight; with `residual`: (rms_norm(x + residual) * weight, x + residual), the
    pre-norm layer's residual add fused into its norm. x: [T, N], last dim contiguous."""
    t, n = x.shape
    y = torch.empty((t, n), dtype=x.dtype, device=x.device)
    r_out = torch.empty_like(y) if residual is not None else y
    if t:
        r = residual if residual is not None else x
        _rms_norm_kernel[(t,)](x, r, weight, y, r_out, x.stride(0), r.stride(0), y.stride(0), r_out.stride(0), n, eps,
                               HAS_RESIDUAL=residual is not None, BLOCK=triton.next_power_of_2(n))
    return y if residual is None else (y, r_out)


@triton.jit
def _rope_kernel(X, Pos, Cos, Sin, stride_xt, stride_xh, stride_c, num_heads,
                 HALF: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_HALF: tl.constexpr):
    """In place, one token, every head: x * cos + rotate_half(x) * sin, in transformers' roundings
    (cos/sin cast to x's dtype, each product and the sum rounded to it)."""
    t = tl.program_id(0).to(tl.int64)
    pos = tl.load(Pos + t).to(tl.int64)
    offs_h = tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, BLOCK_HALF)
    mask = (offs_h < num_heads)[:, None] & (offs_d < HALF)[None, :]
    base = X + t * stride_xt + offs_h[:, None] * stride_xh + offs_d[None, :]
    x1 = tl.load(base, mask=mask, other=0.0)
    x2 = tl.load(base + HALF, mask=mask, other=0.0)
    dtype = x1.dtype
    dm = offs_d < HALF
    c1 = tl.load(Cos + pos * stride_c + offs_d, mask=dm, other=0.0).to(dtype).to(tl.float32)[None, :]
    c2 = tl.load(Cos + pos * stride_c + HALF + offs_d, mask=dm, other=0.0).to(dtype).to(tl.float32)[None, :]
    s1 = tl.load(Sin + pos * stride_c + offs_d, mask=dm, other=0.0).to(dtype).to(tl.float32)[None, :]  # -sin
    s2 = tl.load(Sin + pos * stride_c + HALF + offs_d, mask=dm, other=0.0).to(dtype).to(tl.float32)[None, :]
    a1 = x1.to(tl.float32)
    a2 = x2.to(tl.float32)
    o1 = (a1 * c1).to(dtype).to(tl.float32) + (a2 * s1).to(dtype).to(tl.float32)
    o2 = (a2 * c2).to(dtype).to(tl.float32) + (a1 * s2).to(dtype).to(tl.float32)
    tl.store(base, o1.to(dtype), mask=mask)
    tl.store(base + HALF, o2.to(dtype), mask=mask)


def rope_(x: torch.Tensor, positions: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """Rotate x ([T, heads, d], last dim contiguous, e.g. a view into the fused qkv output) in
    place. cos/sin_signed: the model's fp32 tables [positions, d], sin's first half negated."""
    t, heads, d = x.shape
    assert x.stride(2) == 1 and d % 2 == 0 and cos.stride(1) == 1 and sin_signed.stride() == cos.stride()
    if t:
        _rope_kernel[(t,)](x, positions, cos, sin_signed, x.stride(0), x.stride(1), cos.stride(0), heads,
                           HALF=d // 2, BLOCK_H=triton.next_power_of_2(heads), BLOCK_HALF=triton.next_power_of_2(d // 2))
    return x


@triton.jit
def _silu_mul_kernel(GU, Out, stride_g, stride_o, n, BLOCK: tl.constexpr):
    """silu(gate) * up for one row's block of columns; gate and up side by side in one row."""
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g = tl.load(GU + row * stride_g + offs, mask=mask, other=0.0)
    u = tl.load(GU + row * stride_g + n + offs, mask=mask, other=0.0)
    dtype = g.dtype
    g32 = g.to(tl.float32)
    s = (g32 / (1.0 + tl.exp(-g32))).to(dtype).to(tl.float32)
    tl.store(Out + row * stride_o + offs, (s * u.to(tl.float32)).to(dtype), mask=mask)


def silu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """[T, 2I] (gate | up) -> [T, I] silu(gate) * up, one pass over the fused projection."""
    t, two_n = gate_up.shape
    n = two_n // 2
    assert gate_up.stride(1) == 1
    out = torch.empty((t, n), dtype=gate_up.dtype, device=gate_up.device)
    if t:
        block = min(1024, triton.next_power_of_2(n))
        _silu_mul_kernel[(t, triton.cdiv(n, block))](gate_up, out, gate_up.stride(0), out.stride(0), n, BLOCK=block)
    return out
