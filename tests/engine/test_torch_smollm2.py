"""Torch backend on the embedded SmolLM2-135M (fp32, CPU): greedy output token-identical to
transformers' generate on the same GGUF, alone, in a mixed batch of 16, with the prefix cache off
and under preemption."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine import Engine, SamplingParams  # noqa: E402

pytestmark = pytest.mark.slow
N = 16
PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain photosynthesis in two sentences.",
    "List three prime numbers.",
    "Tell me a joke about cats. " * 3,
    "How do airplanes fly? Explain with detail, please, for a child of ten years old.",
    "Translate 'good morning' into Spanish.",
    "What is 17 times 23?",
]


@pytest.fixture(scope="module")
def smol():
    eng = Engine.load("smollm2-135m", backend="torch")
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def refs(smol):
    """transformers' own greedy generate on the embedded GGUF, loaded through transformers."""
    from transformers import AutoModelForCausalLM

    from engine.model_source import embedded_model_path

    path = embedded_model_path()
    hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    out = []
    for p in PROMPTS:
        ids = torch.tensor([smol.backend.render_prompt(p)])
        with torch.inference_mode():
            # an explicit mask: the pad id (2) is also <|im_end|>, which the prompt contains
            gen = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=N, min_new_tokens=N,
                              do_sample=False, eos_token_id=None)
        out.append(gen[0, ids.shape[1]:].tolist())
    return out


def greedy(n: int = N) -> SamplingParams:
    return SamplingParams(max_tokens=n, temperature=0, ignore_eos=True)


def test_greedy_matches_transformers_alone_and_in_a_batch_of_16(smol, refs):
    alone = [smol.generate(p, greedy())[0] for p in PROMPTS]
    assert [r.token_ids for r in alone] == refs
    # the chat template's system prompt is shared: later requests hit the prefix cache
    assert alone[0].metrics.cached_prompt_tokens == 0
    assert all(r.metrics.cached_prompt_tokens > 0 for r in alone[1:])
    others = [f"Count from one to {k}, then say why. " * (k % 4 + 1) for k in range(8)]
    mixed = [x for pair in zip(PROMPTS, others) for x in pair]
    lengths = [N if i % 2 == 0 else 4 + 3 * i for i in range(16)]
    batch = smol.generate(mixed, [greedy(k) for k in lengths])
    assert [r.token_ids for r in batch[::2]] == refs
    assert [len(r.token_ids) for r in batch] == lengths


def test_no_prefix_cache_and_preemption_give_the_same_tokens(refs):
    # a pool of 12 blocks x 16 tokens holds about four of these requests: the rest wait or get
    # preempted and recomputed
    with Engine.load("smollm2-135m", backend="torch", enable_prefix_caching=False, num_kv_blocks=12,
                     measure_bandwidth=False) as eng:
        got = eng.generate(PROMPTS, greedy())
        st = eng.stats()
    assert [r.token_ids for r in got] == refs
    assert st["num_preemptions"] > 0 and st["prefix_cache_hit_rate"] == 0


def test_cold_start_stages_of_the_embedded_gguf(smol):
    """A GGUF passes through the conversion stage (a cache hit after the first load); the CPU has
    no CUDA graphs to capture."""
    smol.generate("Hi", greedy(1))
    cold = smol.stats()["cold_start_ms"]
    assert {"convert", "load", "kv_cache", "graph_capture", "first_token"} <= set(cold)
    assert cold["graph_capture"] == 0.0 and cold["load"] > 0 and cold["first_token"] > 0
