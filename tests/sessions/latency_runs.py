"""Recorded runs for the latency tests: a small random-weight Llama on the torch engine, and bench
runs whose requests differ only where a test plants a cause (prompt length)."""
from __future__ import annotations

import random
from contextlib import contextmanager
from pathlib import Path

VOCAB = 300


def tiny_model(d: Path, hidden: int = 384, layers: int = 4) -> Path:
    """An HF folder: a random Llama wide enough that a 10x longer prompt costs clearly more to
    prefill than the step overhead, and a word-level tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      eos_token_id=1, bos_token_id=0, pad_token_id=0)
    LlamaForCausalLM(cfg).save_pretrained(str(d))
    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2, **{f"w{i}": i for i in range(3, VOCAB)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>").save_pretrained(str(d))
    return d


def torch_engine(model_dir: Path, **options):
    """One intra-op thread by default: on a shared two-core machine a two-thread parallel region
    waits for whichever thread the OS parks, and a 5 ms prefill becomes 50 (a planted cause drowns)."""
    from engine import Engine
    from engine.model_source import ModelSpec
    from engine.torch.backend import TorchBackend
    from engine.torch.config import TorchConfig

    options.setdefault("measure_bandwidth", False)
    options.setdefault("speculation", "off")
    options.setdefault("n_threads", 1)
    return Engine(TorchBackend(ModelSpec("tiny", "hf_dir", str(model_dir)), TorchConfig(device="cpu", **options)),
                  None, "torch")


@contextmanager
def engine_on(model_dir: Path, **options):
    """torch_engine, closed afterwards, with torch's thread count (process-wide) put back."""
    import torch

    before = torch.get_num_threads()
    eng = torch_engine(model_dir, **options)
    try:
        yield eng
    finally:
        eng.close()
        torch.set_num_threads(before)


def prompt_ids(rng: random.Random, n: int) -> list[int]:
    # random tokens: no two prompts share a full KV block, so the prefix cache plays no part
    return [rng.randrange(3, VOCAB) for _ in range(n)]


def record_run(engine, store, *, n: int, long_at: set[int] = frozenset(), short: int = 48, long: int = 480,
               max_tokens: int = 4, concurrency: int | None = None, seed: int = 0):
    """A bench run of `n` raw-token requests, those at `long_at` with `long` prompt tokens, the
    others `short`; every one generates `max_tokens`. Returns (run id, ids of the long requests)."""
    from engine import SamplingParams
    from sessions.bench import BenchConfig, BenchItem, run_bench

    rng = random.Random(seed)
    engine.submit("", SamplingParams(max_tokens=2, temperature=0), prompt_token_ids=prompt_ids(rng, long)).result(120)  # warm-up, outside the run
    items = [BenchItem("long" if i in long_at else "short", "", max_tokens,
                       prompt_token_ids=prompt_ids(rng, long if i in long_at else short)) for i in range(n)]
    out = run_bench(engine, store, BenchConfig(workload="chat", num_requests=n, max_tokens=max_tokens, ignore_eos=True,
                                               concurrency=concurrency), items=items)
    assert out.completed == n
    ids = [r[0] for r in store.execute("SELECT request_id FROM bench_requests WHERE run_id = ? ORDER BY seq",
                                       [out.run_id]).fetchall()]
    return out.run_id, {ids[i] for i in long_at}
