"""The torch engine's GPU path (Triton kernels: paged attention, KV write, fused norm/rope/SiLU-mul)
run end to end on the CPU under Triton's interpreter, against the torch path on the same weights:
greedy outputs identical, speculation's verify rows through the same kernel, the cold-start stages."""
from __future__ import annotations

import os
from dataclasses import replace

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported anywhere

import pytest
import torch

from engine import Engine, EngineError, SamplingParams
from engine.torch.backend import TorchBackend
from engine.torch.config import TorchConfig
from engine.torch.kernels import resolve_kernels, triton_importable
from engine.torch.llama import ModelConfig

ok, why = triton_importable()
if not ok:
    pytest.skip(f"the Triton path needs triton: {why}", allow_module_level=True)

VOCAB = 256
TINY = ModelConfig(model_type="llama", vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_layers=2,
                   num_heads=6, num_kv_heads=2, head_dim=16, rms_norm_eps=1e-5, rope_theta=10000.0,
                   max_position_embeddings=256, tie_word_embeddings=False)


def engine(dtype: str = "float32", cfg: ModelConfig = TINY, **options) -> Engine:
    options.setdefault("measure_bandwidth", False)
    options.setdefault("num_kv_blocks", 48)  # the interpreter copies every tensor argument per launch
    b = TorchBackend.from_config(cfg, TorchConfig(device="cpu", dtype=dtype, **options))
    b.model.init_random(std=0.25)  # sharp logits: greedy has no near-ties between the two paths
    return Engine(b, None, "torch")


def prompts(n: int, seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, VOCAB, (int(torch.randint(3, 40, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


def generate(eng: Engine, ps: list[list[int]], n: int):
    sp = SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)
    return [h.result(timeout=120) for h in [eng.submit("", sp, prompt_token_ids=p) for p in ps]]


def test_triton_path_is_greedy_identical_to_the_torch_path():
    """Chunked prefill (a small token budget), prefix hits, ragged batches, block size 8: decode
    rows and short chunks through the Triton kernel, long chunks through SDPA over the cache."""
    shared = prompts(1, seed=4)[0][:20]
    ps = prompts(1) + [shared + [7, 8], shared + [9]]
    with engine(kernels="torch", max_num_batched_tokens=24, block_size=8) as ref_eng:
        ref = [r.token_ids for r in generate(ref_eng, ps[:2], 5) + generate(ref_eng, ps[2:], 5)]
    with engine(kernels="triton", max_num_batched_tokens=24, block_size=8) as eng:
        got = generate(eng, ps[:2], 5) + generate(eng, ps[2:], 5)  # the last one hits the cached prefix
        st = eng.stats()
    assert [r.token_ids for r in got] == ref
    assert st["attention"].startswith("Triton") and st["kernels"] == "triton"
    assert sum(r.metrics.cached_prompt_tokens for r in got) > 0  # the prefix cache was in play


def test_speculative_verify_rows_through_the_kernel_keep_greedy_outputs():
    """Self-speculation with every layer as the drafter: drafts are the model's own greedy tokens,
    so every verify row (k + 1 causal rows per sequence in one kernel call) must accept them."""
    ps = prompts(2, seed=3)
    with engine(kernels="torch", speculation="off") as off:
        ref = [r.token_ids for r in generate(off, ps, 8)]
    with engine(kernels="triton", speculation="self", spec_options={"self_layers": 2, "k_max": 3}) as spec:
        got = generate(spec, ps, 8)
        st = spec.stats()
    assert [r.token_ids for r in got] == ref
    assert st["spec_verify_steps"] > 0 and st["acceptance_rate"] == 1.0


@pytest.mark.parametrize("dtype,arch", [("float32", "llama"), ("bfloat16", "llama"), ("float32", "qwen3")])
def test_fused_forward_agrees_with_the_torch_ops(dtype, arch):
    """One prefill of the same model, fused Triton ops (norm+residual, rope, KV write,
    SiLU-mul; Qwen3's per-head q/k norms) vs the torch ops."""
    cfg = TINY if arch == "llama" else replace(TINY, model_type="qwen3", qk_norm=True, attention_bias=True)
    eng = engine(dtype=dtype, cfg=cfg, kernels="triton", speculation="off")
    try:
        b = eng.backend
        runner, model = b.runner, b.model
        from engine.torch.scheduler import ScheduledSeq
        from engine.torch.sequence import Sequence
        from engine.types import Request, RequestMetrics

        ids = prompts(1, seed=8)[0]
        seq = Sequence(Request("r", "", SamplingParams(max_tokens=4, temperature=0), ids,
                               RequestMetrics(arrival_ns=0, prompt_tokens=len(ids))))
        b.block_manager.allocate(seq, len(ids))
        out = {}
        for name, kernels in (("torch", None), ("triton", runner.kernels)):
            model.triton = runner.kernels = kernels
            input_ids, positions, meta, rows, _ = runner.prepare([ScheduledSeq(seq, len(ids))])
            with torch.inference_mode():
                out[name] = model.compute_logits(model(input_ids, positions, runner.kv_cache, meta)[rows])
        diff, scale = (out["triton"] - out["torch"]).abs(), out["torch"].abs().max()
        if dtype == "float32":
            assert diff.max() < 1e-4 * scale
        else:  # bf16 noise through two layers (the interpreter also rounds bf16 by truncation)
            assert diff.max() < 0.08 * scale and diff.mean() < 0.01 * scale
        assert out["triton"].argmax(-1).tolist() == out["torch"].argmax(-1).tolist()
    finally:
        eng.close()


def test_kernel_choice_errors_are_one_clear_line(monkeypatch):
    with pytest.raises(EngineError, match="unknown kernels"):
        TorchConfig(kernels="cuda")
    assert resolve_kernels("auto", torch.device("cpu")) is None  # a CPU keeps its C++/torch path
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(EngineError, match="TRITON_INTERPRET=1"):
        resolve_kernels("triton", torch.device("cpu"))


def test_cold_start_stages_appear_and_first_token_after_the_first_request():
    with engine(kernels="triton") as eng:
        before = eng.stats()["cold_start_ms"]
        generate(eng, prompts(1), 3)
        after = eng.stats()["cold_start_ms"]
    assert {"load", "kv_cache", "graph_capture"} <= set(before) and "first_token" not in before
    assert before["graph_capture"] == 0.0  # a CPU has no CUDA graphs
    assert after["first_token"] > 0 and all(v >= 0 for v in after.values())


def test_graph_static_buffers_give_the_same_tokens():
    """The CUDA-graph path's inputs on the CPU: one capture per row bucket over static block
    tables, context lengths and slots, replayed for every decode and verify step (padding rows
    write to the trash slot and read one token). _Replay stands in for torch.cuda.CUDAGraph."""
    ps = prompts(2, seed=6)  # verify steps: 2 x 3 rows, the bucket of 8 pads two
    with engine(kernels="torch", speculation="off") as ref_eng:
        ref = [r.token_ids for r in generate(ref_eng, ps, 4)]
    with engine(kernels="triton", speculation="self", spec_options={"self_layers": 2, "k_max": 2},
                max_num_seqs=16) as eng:
        runner = eng.backend.runner
        runner.use_graphs = True
        runner._init_graph_buffers()
        runner.graph_batch_sizes = [1, 2, 8]
        runner.capture_graphs()
        assert sorted(runner.graphs) == [(1, -1), (2, -1), (8, -1)]
        replayed: list[int] = []  # rows of each step that went through a bucket's graph
        run_graph = runner._run_rows_graph
        runner._run_rows_graph = lambda ids, pos, meta: (replayed.append(ids.shape[0]), run_graph(ids, pos, meta))[1]
        got = [r.token_ids for r in generate(eng, ps, 4)]
        st = eng.stats()
    assert got == ref
    assert st["spec_verify_steps"] > 0 and st["acceptance_rate"] == 1.0
    assert any(n > len(ps) for n in replayed)  # verify steps: k + 1 rows per sequence
    assert st["cold_start_ms"]["graph_capture"] > 0


def test_a_graph_capture_that_fails_leaves_the_engine_running_eagerly():
    with engine(kernels="triton", max_num_seqs=4) as eng:
        runner = eng.backend.runner
        runner.use_graphs = True
        runner._init_graph_buffers()

        def refuse(b):
            raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

        runner._capture_rows = refuse
        runner.capture_graphs()
        assert not runner.use_graphs and not runner.graphs
        assert eng.stats()["attention"] == "Triton paged attention (CUDA graphs off: operation not permitted when stream is capturing)"
        [r] = generate(eng, prompts(1), 2)
        assert len(r.token_ids) == 2
