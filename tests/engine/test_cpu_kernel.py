"""The C++ CPU kernels: paged attention against dense attention computed in torch (decode rows, causal
chunk rows of a speculative verify, GQA, shuffled block tables, strided queries, rows left alone),
and the panel GEMM against F.linear (row remainders, partial panels, bias, both tile shapes)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from engine.torch import cpu_kernels  # noqa: E402
from engine.torch.attention import decode_attention_ref  # noqa: E402

F = torch.nn.functional


@pytest.fixture(scope="module")
def kernel():
    fn = cpu_kernels.paged_attention_kernel()
    if fn is None:
        pytest.skip(f"no CPU kernel here: {cpu_kernels.kernel_status()}")
    return fn


def dense(q_row, k_cache, v_cache, table, ctx, scale):
    """One row: plain softmax attention over its first ctx cached tokens. q_row: [H, D]."""
    kvh, _, bs, d = k_cache.shape
    k = k_cache[:, table].reshape(kvh, -1, d)[:, :ctx]
    v = v_cache[:, table].reshape(kvh, -1, d)[:, :ctx]
    g = q_row.shape[0] // kvh
    k, v = k.repeat_interleave(g, 0), v.repeat_interleave(g, 0)
    w = torch.softmax((q_row[:, None, :] @ k.transpose(1, 2)).squeeze(1) * scale, -1)
    return (w[:, None, :] @ v).squeeze(1)


@pytest.mark.parametrize("heads,kvh,d,bs", [(6, 2, 16, 4), (9, 3, 64, 16), (4, 4, 32, 8)])
def test_kernel_matches_dense_attention(kernel, heads, kvh, d, bs):
    g = torch.Generator().manual_seed(heads * d + bs)
    nb = 40
    k_cache, v_cache = torch.randn(kvh, nb, bs, d, generator=g), torch.randn(kvh, nb, bs, d, generator=g)
    perm = torch.randperm(nb, generator=g).tolist()
    tables = [perm[0:5], perm[5:8], perm[8:17]]
    # rows: a decode row of seq 0, three causal rows of seq 2 (a verify chunk), a row of a long
    # chunk the kernel must leave alone, a decode row of seq 1 ending exactly on a block edge
    row_seq = [0, 2, 2, 2, 0, 1]
    row_ctx = [5 * bs - 3, 9 * bs - 6, 9 * bs - 5, 9 * bs - 4, 0, 3 * bs]
    width = max(map(len, tables))
    t_tables = torch.tensor([t + [0] * (width - len(t)) for t in tables])
    q_full = torch.randn(len(row_seq), heads + kvh, d, generator=g)
    q = q_full[:, :heads]  # strided rows, as the fused q/k output gives them
    out = torch.full((len(row_seq), heads, d), 7.0)
    scale = d**-0.5
    cpu_kernels.paged_attention_rows(kernel, q, k_cache, v_cache, t_tables, torch.tensor(row_seq),
                                     torch.tensor(row_ctx), out, scale)
    for r, (s, ctx) in enumerate(zip(row_seq, row_ctx)):
        if ctx == 0:
            assert (out[r] == 7.0).all()
            continue
        torch.testing.assert_close(out[r], dense(q[r], k_cache, v_cache, tables[s], ctx, scale), rtol=1e-5, atol=1e-5)
    # and the batched torch reference the GPU path uses agrees on the decode rows
    ref = decode_attention_ref(q[[0, 5]].contiguous(), k_cache, v_cache, t_tables[[0, 1]],
                               torch.tensor([row_ctx[0], row_ctx[5]]), scale)
    torch.testing.assert_close(out[[0, 5]], ref, rtol=1e-5, atol=1e-5)


def test_kernel_refuses_a_block_id_outside_the_cache(kernel):
    k_cache = torch.zeros(1, 4, 4, 8)
    q, out = torch.zeros(1, 1, 8), torch.zeros(1, 1, 8)
    with pytest.raises(RuntimeError, match="refused"):
        cpu_kernels.paged_attention_rows(kernel, q, k_cache, k_cache, torch.tensor([[0, 9]]), torch.tensor([0]),
                                         torch.tensor([6]), out, 1.0)


def test_disabled_kernel_says_why(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "_state", {})
    monkeypatch.setenv(cpu_kernels.DISABLE_ENV, "0")
    assert cpu_kernels.paged_attention_kernel() is None
    assert "WORKBENCH_CPU_KERNELS=0" in cpu_kernels.kernel_status()


@pytest.mark.parametrize("rows", [1, 4, 6, 7, 16, 37])
@pytest.mark.parametrize("n,k,bias,lead", [(960, 576, False, 0), (300, 64, True, 5), (7, 33, True, 0)])
def test_panel_gemm_matches_f_linear(kernel, rows, n, k, bias, lead):
    """The panel GEMM against F.linear: every row-tile remainder (AVX-512 tiles 16 rows, AVX2 6),
    output widths that are not whole panels, a bias, and rows further apart than K (a slice of a
    wider activation, as the fused q/k/v output gives)."""
    g = torch.Generator().manual_seed(rows * n + k)
    w = torch.randn(n, k, generator=g)
    b = torch.randn(n, generator=g) if bias else None
    wide = torch.randn(rows, k + lead, generator=g)
    x = wide[:, lead:]
    pw = cpu_kernels.PanelWeight(w, b)
    y = cpu_kernels.panel_linear(x, pw)
    assert y.shape == (rows, n) and pw.shape == (n, k)
    torch.testing.assert_close(y, F.linear(x, w, b), rtol=1e-4, atol=1e-4)
    assert cpu_kernels.panel_linear(x[:0], pw).shape == (0, n)


@pytest.mark.parametrize("packing", ["panel", "onednn"])
@pytest.mark.parametrize("rows", [1, 5, 37])
def test_prepacked_weights_give_the_plain_logits(rows, packing, monkeypatch):
    """The GEMMs on prepacked weights (the C++ panel GEMM's panels, or oneDNN's blocked layout)
    compute what F.linear on the plain weights computes (to float rounding: another summation
    order), at any row count, with the plain layer weights dropped afterwards; a model whose plain
    weights are gone still reports its weight bytes."""
    from engine.torch import llama
    from engine.torch.attention import AttentionMetadata, PrefillChunk
    from engine.torch.backend import _weight_bytes
    from engine.torch.llama import LlamaForCausalLM, ModelConfig

    cfg = ModelConfig("llama", 300, 64, 128, 2, 4, 2, 16, 1e-5, 10000.0, 256, False)
    model = LlamaForCausalLM(cfg, 256).eval()
    model.init_random(std=0.2)
    model.init_rope("cpu")
    if packing == "onednn":
        monkeypatch.setattr(llama, "panel_gemm_available", lambda: False)
    if llama.cpu_packing(model.embed_tokens.weight) != packing:
        pytest.skip(f"no {packing} packing here")
    plain_bytes = _weight_bytes(model)
    gen = torch.Generator().manual_seed(rows)
    ids, pos = torch.randint(0, 300, (rows,), generator=gen), torch.arange(rows)

    def run() -> torch.Tensor:
        kv = tuple(torch.zeros(2, 2, 4, 16, 16) for _ in range(2))
        meta = AttentionMetadata(slot_mapping=pos, prefills=[PrefillChunk(0, rows, rows, None)])
        with torch.inference_mode():
            return model.compute_logits(model(ids, pos, kv, meta))

    plain = run()
    assert model.pack_cpu_weights(free_plain=True)
    assert isinstance(model._packed[1], cpu_kernels.PanelWeight) == (packing == "panel")
    assert model.layers[0].mlp.gate_up_proj.weight.numel() == 0  # one copy of the weights, not two
    packed = run()
    torch.testing.assert_close(packed, plain, rtol=1e-4, atol=1e-4)
    assert torch.equal(packed.argmax(-1), plain.argmax(-1))
    assert _weight_bytes(model) == plain_bytes


@pytest.mark.parametrize("tiles", ["WB_GEMM_TILES_AVX512", "WB_GEMM_TILES_AVX2"])
def test_panel_gemm_tile_shapes_of_other_cpus(tiles, tmp_path):
    """The build picks the register tile from the CPU it runs on (AVX-512: 16 rows x 1 vector,
    AVX2: 6 rows x 2); both shapes built here, whatever this CPU is (GCC's vector types wider than
    the hardware run as several registers), and checked against F.linear at every row remainder."""
    import ctypes
    import subprocess

    cxx = cpu_kernels._compiler()
    if cxx is None:
        pytest.skip("no C++ compiler")
    so = tmp_path / f"{tiles}.so"
    proc = subprocess.run([cxx, "-O2", "-w", f"-D{tiles}", "-fopenmp", "-shared", "-fPIC", "-std=c++17",
                           str(cpu_kernels._SOURCES[1]), "-o", str(so)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-500:]
    lib = ctypes.CDLL(str(so))
    gemm, pack, width = cpu_kernels.bind_gemm(lib)
    rows = lib.wb_gemm_tile_rows()
    assert rows == (16 if tiles.endswith("AVX512") else 6)
    g = torch.Generator().manual_seed(rows)
    n, k = 300, 40
    w, b = torch.randn(n, k, generator=g), torch.randn(-(-n // width) * width, generator=g)
    packed = torch.empty(-(-n // width) * width * k)
    pack(w.data_ptr(), n, k, packed.data_ptr())
    for m in range(1, 2 * rows + 2):
        x = torch.randn(m, k + 3, generator=g)[:, 3:]
        y = torch.empty(m, n)
        assert gemm(x.data_ptr(), m, k, x.stride(0), packed.data_ptr(), n, b.data_ptr(), y.data_ptr(), n, 2) == 0
        torch.testing.assert_close(y, F.linear(x, w, b[:n]), rtol=1e-4, atol=1e-4)
