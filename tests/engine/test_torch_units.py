"""Torch backend on a tiny random-weight Llama: block manager, scheduler, sampling, and greedy
equality with transformers' generate (alone, batched, prefix cache, preemption). Fast."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from engine import Engine, EngineError, SamplingParams  # noqa: E402
from engine.model_source import ModelSpec  # noqa: E402
from engine.torch.block_manager import BlockManager  # noqa: E402
from engine.torch.config import TorchConfig  # noqa: E402
from engine.torch.scheduler import Scheduler  # noqa: E402
from engine.torch.sequence import Sequence  # noqa: E402
from engine.types import Request, RequestMetrics  # noqa: E402

VOCAB = 300


def make_request(rid: str, tokens: list[int], max_tokens: int = 8) -> Request:
    sp = SamplingParams(max_tokens=max_tokens, temperature=0)
    return Request(rid, "", sp, tokens, RequestMetrics(arrival_ns=0, prompt_tokens=len(tokens)))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """An HF folder: random tiny Llama (GQA, 3 layers) + a real word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=False, eos_token_id=1, bos_token_id=0, pad_token_id=0)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():  # sharper logits than the default init, so greedy has no near-ties
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
    model.save_pretrained(str(d))
    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2, **{f"w{i}": i for i in range(3, VOCAB)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(str(d))
    return d


def load(tiny_dir, **options) -> Engine:
    return Engine(_backend(tiny_dir, **options), None, "torch")


def _backend(tiny_dir, **options):
    from engine.torch.backend import TorchBackend

    options.setdefault("measure_bandwidth", False)
    return TorchBackend(ModelSpec("tiny", "hf_dir", str(tiny_dir)), TorchConfig(device="cpu", **options))


def prompts(n: int, seed: int = 1) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, VOCAB, (int(torch.randint(5, 70, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


@pytest.fixture(scope="module")
def hf_greedy(tiny_dir):
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32).eval()

    def run(ids: list[int], n: int) -> list[int]:
        x = torch.tensor([ids])
        with torch.inference_mode():
            out = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, min_new_tokens=n,
                              do_sample=False, eos_token_id=None, pad_token_id=0)
        return out[0, len(ids):].tolist()

    return run


def generate(engine: Engine, ps: list[list[int]], n: int | list[int]):
    ns = n if isinstance(n, list) else [n] * len(ps)
    handles = [engine.submit("", SamplingParams(max_tokens=k, temperature=0, ignore_eos=True), prompt_token_ids=p)
               for p, k in zip(ps, ns)]
    return [h.result(timeout=120) for h in handles]


# ---- block manager ----

def test_block_manager_prefix_hits_are_chained_and_survive_release_until_reuse():
    bm = BlockManager(num_blocks=8, block_size=4)
    a = Sequence(make_request("a", list(range(10, 21))))  # 11 tokens: 2 full blocks + 3
    assert bm.match_prefix(a) == []
    bm.allocate(a, a.num_tokens)
    a.num_computed_tokens = a.num_tokens
    bm.commit_full_blocks(a)
    assert len(a.block_hashes) == 2 and bm.num_used_blocks == 3
    b = Sequence(make_request("b", list(range(10, 18)) + [99, 98]))  # shares the first 2 blocks
    assert bm.match_prefix(b) == a.block_table[:2]
    c = Sequence(make_request("c", [0] + list(range(11, 21))))  # same second block, other parent
    assert bm.match_prefix(c) == []
    bm.free(a)
    assert bm.num_free_blocks == 8
    assert bm.match_prefix(b) == [0, 1]  # still findable after release
    hits = bm.match_prefix(b)
    assert bm.can_allocate(b, 2, hits)
    bm.allocate_prefix(b, hits)
    bm.allocate(b, 2)
    assert b.num_computed_tokens == 8 and bm.blocks[0].ref_count == 1
    bm.free(b)
    d = Sequence(make_request("d", [7] * 32))  # needs every block: the cached ones get evicted
    bm.allocate(d, 32)
    assert bm.num_free_blocks == 0 and bm.hash_to_block_id == {}
    assert bm.match_prefix(b) == []


def test_block_manager_checks_tokens_on_a_hash_hit(monkeypatch):
    bm = BlockManager(num_blocks=4, block_size=2)
    monkeypatch.setattr(BlockManager, "compute_hash", staticmethod(lambda parent, toks: 7))  # all collide
    a = Sequence(make_request("a", [1, 2, 3]))
    bm.allocate(a, 3)
    a.num_computed_tokens = 3
    bm.commit_full_blocks(a)
    assert bm.match_prefix(Sequence(make_request("b", [1, 2, 5]))) == [a.block_table[0]]
    assert bm.match_prefix(Sequence(make_request("c", [4, 4, 5]))) == []


def test_prefix_match_never_covers_the_last_token():
    bm = BlockManager(num_blocks=4, block_size=2)
    a = Sequence(make_request("a", [1, 2, 3, 4]))
    bm.allocate(a, 4)
    a.num_computed_tokens = 4
    bm.commit_full_blocks(a)
    assert bm.match_prefix(Sequence(make_request("b", [1, 2, 3, 4]))) == [a.block_table[0]]


# ---- scheduler ----

def test_chunked_prefill_keeps_decodes_going_and_respects_the_budget():
    bm = BlockManager(num_blocks=64, block_size=4)
    sch = Scheduler(TorchConfig(max_num_seqs=8, max_num_batched_tokens=16, max_model_len=200), bm)
    short = Sequence(make_request("short", [5] * 6))
    sch.add(short)
    step = sch.schedule()
    assert [(s.seq.seq_id, s.num_tokens) for s in step] == [("short", 6)]
    assert short.request.metrics.scheduled_ns is not None
    sch.postprocess(step)
    short.token_ids.append(7)  # as the backend does after sampling
    sch.add(Sequence(make_request("long", [6] * 40)))
    chunks = []
    while True:
        step = sch.schedule()
        got = {s.seq.seq_id: s.num_tokens for s in step}
        assert sum(got.values()) <= 16
        assert got.get("short") == 1  # the decode is never starved by the long prefill
        chunks.append(got.get("long", 0))
        sch.postprocess(step)
        short.token_ids.append(7)
        if sch.seqs["long"].num_uncomputed == 0:
            break
    assert chunks == [15, 15, 10]


def test_preemption_frees_the_newest_and_requeues_it_first():
    bm = BlockManager(num_blocks=6, block_size=4)
    sch = Scheduler(TorchConfig(max_num_seqs=8, max_num_batched_tokens=64, max_model_len=200), bm)
    a, b = Sequence(make_request("a", [1] * 12)), Sequence(make_request("b", [2] * 12))
    sch.add(a)
    sch.add(b)
    step = sch.schedule()
    assert len(step) == 2 and bm.num_free_blocks == 0
    sch.postprocess(step)
    a.token_ids.append(3)
    b.token_ids.append(3)
    step = sch.schedule()  # a needs a 4th block: b is preempted
    assert [s.seq.seq_id for s in step] == ["a"] and sch.num_preemptions == 1
    assert list(sch.waiting) == [b] and b.num_computed_tokens == 0 and b.block_table == []


def test_request_too_big_for_the_pool_fails_alone():
    bm = BlockManager(num_blocks=4, block_size=4)
    sch = Scheduler(TorchConfig(max_num_seqs=8, max_num_batched_tokens=64, max_model_len=200), bm)
    sch.add(Sequence(make_request("big", [1] * 30)))
    sch.add(Sequence(make_request("ok", [1] * 5)))
    step = sch.schedule()
    assert [s.seq.seq_id for s in step] == ["ok"]
    assert [sid for sid, _ in sch.errors] == ["big"] and "KV cache" in sch.errors[0][1]


# ---- config ----

def test_torch_config_takes_the_load_options_and_resolves_per_device():
    with pytest.raises(EngineError, match="no option kv_cache_size"):
        TorchConfig.from_options(device="cpu", kv_cache_size=1)
    with pytest.raises(EngineError, match="unknown spec_options"):
        TorchConfig(spec_options={"k": 3})
    cpu = TorchConfig.from_options(n_ctx=512, max_num_seqs=None).resolve(False, 2048)
    assert (cpu.max_model_len, cpu.max_num_seqs, cpu.max_num_batched_tokens) == (512, 64, 1024)
    gpu = TorchConfig(max_model_len=4096, max_num_batched_tokens=16).resolve(True, 2048)
    assert (gpu.max_model_len, gpu.max_num_seqs, gpu.max_num_batched_tokens) == (2048, 256, 256)


# ---- the backend end to end on the tiny model ----

def test_greedy_matches_transformers_alone_and_batched(tiny_dir, hf_greedy):
    ps = prompts(8)
    refs = [hf_greedy(p, 12) for p in ps]
    with load(tiny_dir, max_num_batched_tokens=64) as eng:  # small budget: prompts get chunked
        alone = [generate(eng, [p], 12)[0].token_ids for p in ps]
        batched = generate(eng, ps + prompts(8, seed=2), [12] * 8 + list(range(4, 20, 2)))
        eng.backend.runner.attn_kernel = None  # the torch path, in many small attention groups
        eng.backend.runner.decode_group_tokens = 40
        grouped = generate(eng, ps, 12)
        st = eng.stats()
    assert alone == refs
    assert [r.token_ids for r in batched[:8]] == refs
    assert [r.token_ids for r in grouped] == refs
    assert st["kv_blocks_used"] == 0 and st["waiting"] == 0 and st["running"] == 0


def test_prefix_cache_on_and_off_and_preemption_give_identical_outputs(tiny_dir):
    system = prompts(1, seed=5)[0] * 3  # a long shared prefix
    ps = [system + p for p in prompts(6, seed=3)]
    with load(tiny_dir, enable_prefix_caching=False) as off:
        ref = [r.token_ids for r in generate(off, ps, 16)]
        assert off.stats()["prefix_cache_hit_rate"] == 0
    with load(tiny_dir) as on:
        first = generate(on, ps[:1], 16)
        rest = generate(on, ps[1:], 16)
        assert [r.token_ids for r in first + rest] == ref
        assert first[0].metrics.cached_prompt_tokens == 0
        assert all(r.metrics.cached_prompt_tokens >= len(system) - 16 for r in rest)
        cached = sum(r.metrics.cached_prompt_tokens for r in first + rest)
        assert on.stats()["prefix_cache_hit_rate"] == pytest.approx(cached / sum(map(len, ps)))
    # the pool holds the longest request and a bit more: admitted prompts fill it, decodes preempt
    tight_blocks = -(-(max(map(len, ps)) + 16) // 4) + 3
    with load(tiny_dir, num_kv_blocks=tight_blocks, block_size=4, enable_prefix_caching=False) as tight:
        got = generate(tight, ps, 16)
        assert [r.token_ids for r in got] == ref
        assert tight.stats()["num_preemptions"] > 0


def test_prompt_longer_than_context_fails_alone(tiny_dir):
    with load(tiny_dir, max_model_len=64) as eng:
        bad = eng.submit("", SamplingParams(max_tokens=4, temperature=0), prompt_token_ids=[5] * 80)
        good = eng.submit("", SamplingParams(max_tokens=4, temperature=0), prompt_token_ids=[5] * 10)
        assert bad.result(60).finish_reason == "error" and "context" in bad.result().error
        assert good.result(60).finish_reason == "length" and len(good.result().token_ids) == 4


def test_sampling_is_seeded_and_top_k_1_is_greedy(tiny_dir):
    p = prompts(1, seed=9)[0]
    with load(tiny_dir) as eng:
        def run(**kw):
            sp = SamplingParams(max_tokens=12, ignore_eos=True, **kw)
            return eng.submit("", sp, prompt_token_ids=p).result(60).token_ids

        a, b = run(temperature=1.5, seed=3), run(temperature=1.5, seed=3)
        c = run(temperature=1.5, seed=4)
        assert a == b and a != c
        assert run(temperature=0.8, top_k=1, seed=1) == run(temperature=0)
        assert len(run(temperature=1.0, top_p=0.5, top_k=20, seed=2)) == 12


def test_tokenizer_and_step_events(tiny_dir):
    events = []
    with load(tiny_dir) as eng:
        eng.add_listener(events.append)
        r = eng.generate("w5 w6 w7", SamplingParams(max_tokens=5, temperature=0, ignore_eos=True))[0]
        assert r.metrics.prompt_tokens == 3 and len(r.token_ids) == 5
        assert r.metrics.queue_time_s is not None and r.metrics.queue_time_s >= 0
        st = eng.stats()
    steps = [e for e in events if type(e).__name__ == "StepEvent"]
    assert steps[0].prefill_tokens == 3 and steps[-1].decode_tokens == 1
    assert all(s.kv_blocks_used is not None for s in steps)
    for key in ("batch_size", "running", "waiting", "kv_blocks_used", "kv_blocks_free",
                "prefix_cache_hit_rate", "roofline_fraction", "memory_bandwidth_gbps"):
        assert key in st


def test_unsupported_architecture_is_one_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 10}))
    from engine.torch.backend import TorchBackend

    with pytest.raises(EngineError, match="supports llama"):
        TorchBackend(ModelSpec("x", "hf_dir", str(tmp_path)), TorchConfig(device="cpu"))


def test_paged_decode_attention_matches_dense_attention():
    """The torch reference (also what CUDA graphs run) against attention over a dense copy."""
    import torch.nn.functional as F

    from engine.torch.attention import decode_attention_ref, store_kv

    g = torch.Generator().manual_seed(0)
    kvh, heads, d, bs, nb = 2, 6, 16, 4, 32
    k_cache, v_cache = torch.zeros(kvh, nb, bs, d), torch.zeros(kvh, nb, bs, d)
    lens = [3, 9, 14]
    tables = [[7, 2, 30, 0], [5, 11, 1, 0], [20, 3, 9, 17]]  # scattered blocks, padded with 0
    dense = []
    for length, table in zip(lens, tables):
        k, v = torch.randn(length, kvh, d, generator=g), torch.randn(length, kvh, d, generator=g)
        slots = torch.tensor([table[p // bs] * bs + p % bs for p in range(length)])
        store_kv(k, v, k_cache, v_cache, slots)
        dense.append((k, v))
    q = torch.randn(3, heads, d, generator=g)
    got = decode_attention_ref(q, k_cache, v_cache, torch.tensor(tables), torch.tensor(lens), d**-0.5)
    for i, (k, v) in enumerate(dense):
        kr = k.repeat_interleave(heads // kvh, dim=1).transpose(0, 1)  # [heads, len, d]
        vr = v.repeat_interleave(heads // kvh, dim=1).transpose(0, 1)
        want = F.scaled_dot_product_attention(q[i][:, None], kr, vr)[:, 0]
        torch.testing.assert_close(got[i], want)


@pytest.mark.parametrize("arch", ["qwen2", "qwen3", "mistral", "llama3-rope"])
def test_other_llama_family_models_match_transformers(arch, tmp_path):
    import transformers as tf

    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    cfg = {
        "qwen2": lambda: tf.Qwen2Config(**common),
        "qwen3": lambda: tf.Qwen3Config(head_dim=16, **common),
        "mistral": lambda: tf.MistralConfig(sliding_window=None, **common),
        "llama3-rope": lambda: tf.LlamaConfig(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                            "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
                                              rope_theta=10000.0, **common),
    }[arch]()
    torch.manual_seed(0)
    hf = tf.AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.2)  # biases too: Qwen2's q/k/v biases must be loaded, not left at zero
    hf.save_pretrained(str(tmp_path))
    ids = prompts(3, seed=11)
    refs = []
    for p in ids:
        x = torch.tensor([p])
        with torch.inference_mode():
            out = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=10, min_new_tokens=10,
                              do_sample=False, eos_token_id=None, pad_token_id=0)
        refs.append(out[0, len(p):].tolist())
    with load(tmp_path) as eng:
        got = generate(eng, ids, 10)
    assert [r.token_ids for r in got] == refs


def test_decode_groups_match_the_reference_view_and_gather():
    """The per-step groups the CPU path uses (a view of consecutive blocks; a gather with a
    precomputed mask) give what the batched-gather reference gives."""
    from engine.torch.attention import DecodeGroup, decode_attention_group, decode_attention_ref, store_kv

    g = torch.Generator().manual_seed(1)
    kvh, heads, d, bs, nb = 2, 6, 16, 4, 32
    k_cache, v_cache = torch.randn(kvh, nb, bs, d, generator=g), torch.randn(kvh, nb, bs, d, generator=g)
    q = torch.randn(3, heads, d, generator=g)
    tables, lens = [[5, 6, 7, 0], [9, 2, 30, 0], [20, 3, 9, 17]], [11, 9, 14]
    ref = decode_attention_ref(q, k_cache, v_cache, torch.tensor(tables), torch.tensor(lens), d**-0.5)
    view = decode_attention_group(q[:1], k_cache, v_cache, DecodeGroup(0, 1, 11, first_block=5), d**-0.5)
    torch.testing.assert_close(view, ref[:1])
    length = 4 * bs
    keep = torch.arange(length)[None, :] < torch.tensor(lens)[:, None]
    mask = torch.zeros(3, 1, 1, length).masked_fill_(~keep.view(3, 1, 1, length), float("-inf"))
    ids = torch.tensor([b for t in tables for b in t])
    gathered = decode_attention_group(q, k_cache, v_cache, DecodeGroup(0, 3, 14, block_ids=ids, mask=mask), d**-0.5)
    torch.testing.assert_close(gathered, ref)
    # store_kv writes where a view reads: the next token of the first row lands in block 7
    k1, v1 = torch.randn(1, kvh, d, generator=g), torch.randn(1, kvh, d, generator=g)
    store_kv(k1, v1, k_cache, v_cache, torch.tensor([7 * bs + 3]))
    assert torch.equal(k_cache[:, 7, 3], k1[0]) and torch.equal(v_cache[:, 7, 3], v1[0])


def test_runner_groups_use_a_view_only_for_consecutive_blocks(tiny_dir):
    from engine.torch.scheduler import ScheduledSeq

    with load(tiny_dir, block_size=4) as eng:
        runner = eng.backend.runner
        runner.attn_kernel = None  # the torch path (no C++ compiler, or WORKBENCH_CPU_KERNELS=0)
        a = Sequence(make_request("a", list(range(3, 12))))
        a.block_table, a.num_computed_tokens = [4, 5, 6], 9  # 10 tokens with the new one
        b = Sequence(make_request("b", list(range(3, 12))))
        b.block_table, b.num_computed_tokens = [4, 9, 6], 9
        _, _, meta, _, _ = runner.prepare([ScheduledSeq(a, 1)])
        assert [(gr.first_block, gr.context_len) for gr in meta.decode_groups] == [(4, 10)]
        _, _, meta, _, _ = runner.prepare([ScheduledSeq(b, 1)])
        (gr,) = meta.decode_groups
        assert gr.first_block == -1 and gr.block_ids.tolist() == [4, 9, 6] and gr.mask.shape[-1] == 12
        assert (gr.mask[0, 0, 0, 10:] == float("-inf")).all() and (gr.mask[0, 0, 0, :10] == 0).all()
