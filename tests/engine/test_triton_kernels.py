"""The GPU path's Triton kernels against the torch reference ops, on the CPU under Triton's
interpreter (shapes kept small: the interpreter runs every program in numpy)."""
from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported anywhere

import pytest
import torch
import torch.nn.functional as F

from engine.torch.kernels import triton_importable

ok, why = triton_importable()
if not ok:
    pytest.skip(f"Triton kernel tests need triton: {why}", allow_module_level=True)

from engine.torch import triton_kernels as tk  # noqa: E402
from engine.torch.attention import decode_attention_ref, store_kv  # noqa: E402
from engine.torch.llama import apply_rope, rms_norm  # noqa: E402

TOL = {torch.float32: dict(atol=2e-5, rtol=1e-4), torch.bfloat16: dict(atol=2e-2, rtol=2e-2)}


def _paged_case(gen, dtype, kvh, group, d, page, ctx_lens, num_blocks=None):
    """Caches with every sequence's blocks scattered at random, and q for one decode row each."""
    widths = [-(-n // page) for n in ctx_lens]
    num_blocks = num_blocks or sum(widths) + 3
    k_cache = torch.randn(kvh, num_blocks, page, d, generator=gen).to(dtype)
    v_cache = torch.randn(kvh, num_blocks, page, d, generator=gen).to(dtype)
    perm = torch.randperm(num_blocks, generator=gen).tolist()
    width = max(widths)
    tables, i = [], 0
    for w in widths:
        tables.append(perm[i:i + w] + [0] * (width - w))
        i += w
    q = torch.randn(len(ctx_lens), kvh * group, d, generator=gen).to(dtype)
    return q, k_cache, v_cache, torch.tensor(tables), torch.tensor(ctx_lens)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("group,page,splits", [(1, 16, 1), (3, 8, 1), (4, 16, 4), (3, 16, 3), (4, 5, 2)])
def test_paged_decode_matches_the_torch_reference(dtype, group, page, splits):
    gen = torch.Generator().manual_seed(group * 100 + page + splits)
    kvh, d = 2, 32
    ctx = [1, 37, 70, 16]  # ragged: a first token, a partial last block, an exact block
    q, kc, vc, tables, lens = _paged_case(gen, dtype, kvh, group, d, page, ctx)
    scale = d**-0.5
    ref = decode_attention_ref(q.float(), kc.float(), vc.float(), tables, lens, scale)
    out = torch.full_like(q, float("nan"))
    tk.paged_attention(q, kc, vc, tables, torch.arange(len(ctx)), lens, out, scale, num_splits=splits)
    torch.testing.assert_close(out.float(), ref, **TOL[dtype])


def test_split_k_agrees_with_one_pass_and_leaves_empty_splits_harmless():
    gen = torch.Generator().manual_seed(7)
    q, kc, vc, tables, lens = _paged_case(gen, torch.float32, 2, 4, 16, 16, [3, 130])
    rows = torch.arange(2)
    one = tk.paged_attention(q, kc, vc, tables, rows, lens, torch.empty_like(q), 0.25, num_splits=1)
    # 8 splits of a 3-token row: all but the first are empty
    many = tk.paged_attention(q, kc, vc, tables, rows, lens, torch.empty_like(q), 0.25, num_splits=8)
    torch.testing.assert_close(many, one, atol=1e-5, rtol=1e-5)
    assert not one.isnan().any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("group,splits", [(1, 1), (3, 2), (4, 1), (4, 3)])
def test_verify_rows_attend_causally_within_their_sequence(dtype, group, splits):
    """Speculative verify: k+1 rows of one sequence, row j sees its first ctx-k+j tokens, several
    rows per program (row_leads); a row with context 0 (a long prefill chunk's, attended
    elsewhere) is left untouched. Grouped and one-row-per-program runs agree with the reference."""
    gen = torch.Generator().manual_seed(3 + group)
    kvh, d, page = 1, 32, 16
    q, kc, vc, tables, _ = _paged_case(gen, dtype, kvh, group, d, page, [45, 20])
    row_seq = torch.tensor([0] * 9 + [1, 1, 1])
    row_ctx = torch.tensor(list(range(37, 46)) + [18, 19, 0])
    leads = torch.tensor(tk.row_leads([9, 2], group) + [0])
    assert leads[:9].sum() == 9 and (leads[:9] > 1).any()  # rows really share programs
    qr = torch.randn(12, kvh * group, d, generator=gen).to(dtype)
    grouped = tk.paged_attention(qr, kc, vc, tables, row_seq, row_ctx, torch.full_like(qr, 5.0), d**-0.5,
                                 num_splits=splits, row_lead=leads)
    alone = tk.paged_attention(qr, kc, vc, tables, row_seq, row_ctx, torch.full_like(qr, 5.0), d**-0.5,
                               num_splits=splits)
    for r in range(11):
        ref = decode_attention_ref(qr[r:r + 1].float(), kc.float(), vc.float(), tables[row_seq[r]][None],
                                   row_ctx[r:r + 1], d**-0.5)
        torch.testing.assert_close(grouped[r:r + 1].float(), ref, **TOL[dtype])
        torch.testing.assert_close(alone[r:r + 1].float(), ref, **TOL[dtype])
    assert (grouped[11] == 5.0).all() and (alone[11] == 5.0).all()


def test_row_leads_split_chunks_by_what_fills_a_dot():
    assert tk.rows_per_program(4) == 4 and tk.rows_per_program(1) == 16 and tk.rows_per_program(32) == 1
    assert tk.row_leads([1, 1, 9], 4) == [1, 1, 4, 0, 0, 0, 4, 0, 0, 0, 1]
    assert tk.row_leads([3], 8) == [2, 0, 1]


def test_strided_q_view_of_the_fused_projection():
    """The GPU layer passes q as a view into the qkv output (row stride > heads * d)."""
    gen = torch.Generator().manual_seed(11)
    _, kc, vc, tables, lens = _paged_case(gen, torch.float32, 2, 2, 16, 16, [20, 9])
    qkv = torch.randn(2, (4 + 2 * 2) * 16, generator=gen)
    q = qkv[:, :64].view(2, 4, 16)
    ref = decode_attention_ref(q.contiguous(), kc, vc, tables, lens, 0.25)
    out = tk.paged_attention(q, kc, vc, tables, torch.arange(2), lens, torch.empty(2, 4, 16), 0.25)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_store_kv_writes_the_slots_the_reference_writes(dtype):
    gen = torch.Generator().manual_seed(5)
    kvh, nb, page, d, t = 3, 6, 8, 32, 10
    k = torch.randn(t, kvh, d, generator=gen).to(dtype)
    v = torch.randn(t, kvh, d, generator=gen).to(dtype)
    slots = torch.randperm(nb * page, generator=gen)[:t]
    ref_k, ref_v = torch.zeros(kvh, nb, page, d, dtype=dtype), torch.zeros(kvh, nb, page, d, dtype=dtype)
    store_kv(k, v, ref_k, ref_v, slots)
    out_k, out_v = torch.zeros_like(ref_k), torch.zeros_like(ref_v)
    tk.store_kv(k, v, out_k, out_v, slots)
    assert torch.equal(out_k, ref_k) and torch.equal(out_v, ref_v)


def test_store_kv_reads_strided_views_and_skips_negative_slots():
    qkv = torch.randn(4, (2 + 2 * 2) * 16)
    k, v = qkv[:, 32:64].view(4, 2, 16), qkv[:, 64:].view(4, 2, 16)
    kc, vc = torch.zeros(2, 2, 4, 16), torch.zeros(2, 2, 4, 16)
    tk.store_kv(k, v, kc, vc, torch.tensor([5, -1, 0, 7]))
    flat = kc.view(2, 8, 16)
    assert torch.equal(flat[:, 5], k[0]) and torch.equal(flat[:, 0], k[2]) and torch.equal(flat[:, 7], k[3])
    assert flat[:, [1, 2, 3, 4, 6]].abs().sum() == 0
    assert torch.equal(vc.view(2, 8, 16)[:, 7], v[3])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_and_fused_residual_add(dtype):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 96, generator=gen).to(dtype)
    r = torch.randn(5, 96, generator=gen).to(dtype)
    w = (1 + 0.1 * torch.randn(96, generator=gen)).to(dtype)
    torch.testing.assert_close(tk.rms_norm(x, w, 1e-5), rms_norm(x, w, 1e-5), **TOL[dtype])
    y, h = tk.rms_norm(x, w, 1e-5, residual=r)
    torch.testing.assert_close(h, x + r, **TOL[dtype])
    torch.testing.assert_close(y, rms_norm(x + r, w, 1e-5), **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rope_in_place_matches_apply_rope(dtype):
    gen = torch.Generator().manual_seed(2)
    t, heads, d, max_pos = 6, 5, 32, 64
    inv = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
    emb = torch.cat([torch.arange(max_pos).float()[:, None] * inv] * 2, dim=-1)
    cos, sin = emb.cos(), emb.sin()
    sin[:, : d // 2].neg_()
    pos = torch.tensor([0, 3, 9, 10, 40, 63])
    qkv = torch.randn(t, (heads + 2) * d, generator=gen).to(dtype)  # a wider row: rotate a view
    x = qkv[:, : heads * d].view(t, heads, d)
    ref = apply_rope(x.clone(), cos[pos].to(dtype).unsqueeze(1), sin[pos].to(dtype).unsqueeze(1))
    tail = qkv[:, heads * d:].clone()
    tk.rope_(x, pos, cos, sin)
    torch.testing.assert_close(x, ref, **TOL[dtype])
    assert torch.equal(qkv[:, heads * d:], tail)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_silu_mul_matches_torch(dtype):
    gen = torch.Generator().manual_seed(4)
    gu = torch.randn(3, 2 * 1500, generator=gen).to(dtype)  # two column blocks, a ragged last one
    ref = F.silu(gu[:, :1500]) * gu[:, 1500:]
    torch.testing.assert_close(tk.silu_mul(gu), ref, **TOL[dtype])


def test_split_choice_fills_the_gpu_only_when_it_is_idle():
    assert tk.num_splits_for(rows=256, kv_heads=8, max_context=4096, sm_count=132) == 1
    assert tk.num_splits_for(rows=1, kv_heads=8, max_context=64, sm_count=132) == 1
    n = tk.num_splits_for(rows=1, kv_heads=8, max_context=8192, sm_count=132)
    assert 16 <= n <= tk.MAX_SPLITS and n & (n - 1) == 0
