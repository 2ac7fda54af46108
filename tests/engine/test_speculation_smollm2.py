"""Speculative decoding on the embedded SmolLM2-135M (torch, fp32, CPU): greedy output token-identical
to speculation off for prompt lookup, self-speculation and auto, on code-edit prompts, batched."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from engine import Engine, SamplingParams  # noqa: E402

pytestmark = pytest.mark.slow
PROMPTS = [
    [{"role": "system", "content": "You edit code. Reply with the whole edited file in one code block."},
     {"role": "user", "content": "Add a docstring.\n\n```python\ndef total(xs):\n    t = 0\n    for x in xs:\n"
                                 "        t = t + x\n    return t\n```"}],
    "Repeat exactly: the quick brown fox jumps over the lazy dog. the quick brown fox jumps over the lazy dog.",
    "What is 17 times 23?",
]


def test_speculation_modes_are_token_identical_to_off():
    sp = SamplingParams(max_tokens=40, temperature=0)
    with Engine.load("smollm2-135m", backend="torch", speculation="ngram", measure_bandwidth=False) as eng:
        ngram = [r.token_ids for r in eng.generate(PROMPTS, sp)]
        st = eng.stats()
        assert st["spec_draft_tokens"] > 0 and st["spec_accepted_tokens"] > 0
        assert st["acceptance_by_position"][0] > 0 and len(st["acceptance_by_position"]) == 8
        eng.backend.set_speculation("self", self_layers=8, k_max=3)
        self_spec = [r.token_ids for r in eng.generate(PROMPTS[:2], sp)]
        eng.backend.set_speculation("auto")
        auto = [r.token_ids for r in eng.generate(PROMPTS, sp)]
        assert eng.stats()["speculation_reason"]
        eng.backend.set_speculation("off")
        off = [r.token_ids for r in eng.generate(PROMPTS, sp)]
    assert ngram == off and auto == off and self_spec == off[:2]
