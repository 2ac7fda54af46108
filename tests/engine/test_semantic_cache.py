"""The semantic cache with the real all-MiniLM-L6-v2: hits on paraphrases, guards, scopes,
TTL, LRU, audit, figures; and the exact vector index against brute force."""
from __future__ import annotations

import numpy as np
import pytest

from engine.cache.guards import prompt_features, refusal
from engine.cache.semantic_cache import CacheScope, SemanticCache, SemanticCacheConfig, VectorIndex, split_prompt
from engine.types import SamplingParams

GREEDY = SamplingParams(max_tokens=64, temperature=0.0)


@pytest.fixture(scope="module")
def embedder():
    from engine.embeddings import load_embedder

    return load_embedder()


class Clock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _cache(embedder, **cfg) -> SemanticCache:
    return SemanticCache(SemanticCacheConfig(**cfg), embedder=embedder, clock=cfg.pop("clock", Clock()))


def _scope(cache: SemanticCache, prompt, model="m", params=GREEDY, tools=None):
    return cache.scope_for(model, prompt, params, tools)


# ---- guards (no model needed) ----

@pytest.mark.parametrize("a, b, guard", [
    ("Is coffee bad for you?", "Is coffee not bad for you?", "negation"),
    ("Which foods contain gluten?", "Which foods don't contain gluten?", "negation"),
    ("What is 15% of 80?", "What is 15% of 90?", "number"),
    ("How many calories are in two eggs?", "How many calories are in three eggs?", "number"),
    ("What is the capital of France?", "What is the capital of Germany?", "entity"),
    ("How do I reverse a list in python?", "How do I reverse a list in java?", "entity"),
    ("What's the weather in Paris today?", "What's the weather in Paris tomorrow?", "datetime"),
    ("Events in London this weekend", "Events in London next weekend", "datetime"),
    ("What are the advantages of nuclear power?", "What are the disadvantages of nuclear power?", "polarity"),
    ("Sort in ascending order: 5, 2, 9", "Sort in descending order: 5, 2, 9", "polarity"),
    ("List the planets as JSON.", "List the planets as a table.", "format"),
    ("Explain vaccines to a child.", "Explain vaccines to an expert.", "format"),
    ("What is machine learning?", "Was ist maschinelles Lernen?", "language"),
    ("Name a color", "Name another color", "reference"),
    ("Suggest a dinner recipe.", "Suggest a different dinner recipe.", "reference"),
])
def test_guard_refuses_the_known_near_misses(a, b, guard):
    assert refusal(prompt_features(a), prompt_features(b)) == guard


@pytest.mark.parametrize("a, b", [
    ("What is the capital of France?", "What's France's capital city?"),
    ("Why doesn't my code compile?", "Why is my code not compiling?"),
    ("What is the 10th Fibonacci number?", "Give me the tenth Fibonacci number."),
    ("Suggest five birthday party ideas.", "Give me 5 ideas for a birthday party."),
    ("yo whats the capital of spain", "Could you kindly tell me what the capital of Spain is?"),
    ("How much should I save each month?", "What amount should I put aside monthly?"),
    ("Write a haiku about autumn leaves.", "Compose a haiku on autumn leaves."),
])
def test_guard_lets_paraphrases_through(a, b):
    assert refusal(prompt_features(a), prompt_features(b)) is None


# ---- scope ----

def test_scope_separates_system_prompt_tools_history_and_sampling():
    user = {"role": "user", "content": "What is 2+2?"}
    base = CacheScope.for_request("m", [{"role": "system", "content": "Be terse."}, user], GREEDY)
    assert base == CacheScope.for_request("m", [{"role": "system", "content": "Be terse."}, user], GREEDY)
    assert base.key != CacheScope.for_request("m", [{"role": "system", "content": "Be verbose."}, user], GREEDY).key
    assert base.key != CacheScope.for_request("other", [{"role": "system", "content": "Be terse."}, user], GREEDY).key
    assert base.key != CacheScope.for_request("m", [{"role": "system", "content": "Be terse."}, user], GREEDY,
                                              tools=[{"name": "calc"}]).key
    assert base.key != CacheScope.for_request("m", [{"role": "system", "content": "Be terse."}, user],
                                              SamplingParams(max_tokens=8, temperature=0.0)).key
    history = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"},
               {"role": "assistant", "content": "hello"}, user]
    assert base.key != CacheScope.for_request("m", history, GREEDY).key
    assert split_prompt(history)[0] == "What is 2+2?"


def test_sampled_requests_are_not_cached_unless_allowed():
    sampled = SamplingParams(max_tokens=16, temperature=0.7)
    cache = SemanticCache(SemanticCacheConfig(), embedder=object())
    assert cache.scope_for("m", "hi", sampled) is None
    assert cache.lookup("hi", None) is None and cache.store("hi", None, "x") is None
    assert cache.stats()["skipped"] == 1
    allowed = SemanticCache(SemanticCacheConfig(cache_sampled=True), embedder=object())
    assert allowed.scope_for("m", "hi", sampled) is not None


# ---- the cache with the real model ----

def test_paraphrase_hits_and_near_misses_do_not(embedder):
    cache = _cache(embedder, threshold=0.70)  # low enough that only the guard stops "Austria" (0.71)
    prompt = [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "What is the capital of Australia?"}]
    scope = _scope(cache, prompt)
    cache.store(prompt, scope, "Canberra.")
    para = [prompt[0], {"role": "user", "content": "Which city is Australia's capital?"}]
    hit = cache.lookup(para, _scope(cache, para))
    assert hit is not None and hit.answer == "Canberra." and hit.similarity >= 0.9
    swapped = [prompt[0], {"role": "user", "content": "What is the capital of Austria?"}]
    probe = cache.probe(swapped, _scope(cache, swapped))
    assert probe.hit is None and probe.refused_by == "entity" and probe.best_similarity >= 0.70
    other_system = [{"role": "system", "content": "Answer in French."}, para[1]]
    assert cache.lookup(other_system, _scope(cache, other_system)) is None
    st = cache.stats()
    assert (st["lookups"], st["hits"], st["refusals"]) == (3, 1, {"entity": 1})
    assert st["hit_rate"] == pytest.approx(1 / 3)
    assert st["near_misses"] == 1 and st["near_miss_min_distance"] == pytest.approx(1 - probe.best_similarity)


def test_without_guards_the_negation_would_have_hit(embedder):
    a, b = "Which foods contain gluten?", "Which foods don't contain gluten?"
    for guards, expect_hit in ((False, True), (True, False)):
        cache = _cache(embedder, threshold=0.80, guards=guards)
        cache.store(a, _scope(cache, a), "bread, pasta")
        assert (cache.lookup(b, _scope(cache, b)) is not None) is expect_hit


def test_ttl_expires_entries(embedder):
    clock = Clock()
    cache = SemanticCache(SemanticCacheConfig(ttl_s=60), embedder=embedder, clock=clock)
    q = "How do I boil an egg?"
    cache.store(q, _scope(cache, q), "Ten minutes.")
    clock.t += 30
    assert cache.lookup(q, _scope(cache, q)) is not None
    clock.t += 31
    assert cache.lookup(q, _scope(cache, q)) is None
    assert len(cache) == 0 and cache.stats()["expired"] == 1


def test_size_cap_evicts_least_recently_used(embedder):
    clock = Clock()
    cache = SemanticCache(SemanticCacheConfig(max_entries=2), embedder=embedder, clock=clock)
    prompts = ["What is the boiling point of water?", "Who wrote Hamlet?", "How far is the Moon?"]
    cache.store(prompts[0], _scope(cache, prompts[0]), "100 C")
    clock.t += 1
    cache.store(prompts[1], _scope(cache, prompts[1]), "Shakespeare")
    clock.t += 1
    assert cache.lookup(prompts[0], _scope(cache, prompts[0])) is not None  # now most recently used
    cache.store(prompts[2], _scope(cache, prompts[2]), "384,400 km")
    assert len(cache) == 2 and cache.stats()["evictions"] == 1
    assert cache.lookup(prompts[1], _scope(cache, prompts[1])) is None  # the LRU one went
    assert cache.lookup(prompts[0], _scope(cache, prompts[0])) is not None


def test_audit_generates_anyway_and_records_whether_the_answer_differed(embedder):
    cache = _cache(embedder, audit_rate=1.0, audit_seed=1)
    q = "Who painted the Mona Lisa?"
    cache.store(q, _scope(cache, q), "Leonardo da Vinci.")
    calls = []
    answer, hit = cache.answer(q, _scope(cache, q), lambda: calls.append(1) or "It was Michelangelo.")
    assert hit is not None and hit.audit and calls == [1] and answer == "It was Michelangelo."
    answer, hit = cache.answer(q, _scope(cache, q), lambda: "leonardo da vinci. ")
    st = cache.stats()
    assert (st["audits"], st["audit_differed"], st["audit_differ_rate"]) == (2, 1, 0.5)


def test_errors_and_cancelled_answers_are_not_stored(embedder):
    cache = _cache(embedder)
    q = "Summarize the plot of Hamlet."
    assert cache.store(q, _scope(cache, q), "partial", finish_reason="cancelled") is None
    assert cache.store(q, _scope(cache, q), "", finish_reason="stop") is None
    assert len(cache) == 0


# ---- the exact index ----

def _anisotropic(rng, n, dim=96):
    # like sentence embeddings: a few strong directions plus noise, unit rows
    basis = rng.standard_normal((12, dim))
    x = rng.standard_normal((n, 12)) @ basis * 0.6 + rng.standard_normal((n, dim)) * 0.25
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_pruned_search_is_exact_against_brute_force():
    rng = np.random.default_rng(0)
    vecs = _anisotropic(rng, 3000)
    index = VectorIndex(96)
    index.prune_min_rows = 1000  # the PCA bound kicks in at 1000 rows instead of 16k
    ids = [f"e{i}" for i in range(len(vecs))]
    index.add_many(ids[:500], vecs[:500])
    index.add_many(ids[500:], vecs[500:])
    assert index._rot is not None
    for gone in ids[:300:7]:
        index.remove(gone)
    alive = np.array([i for i, e in enumerate(ids) if e in index.pos])
    for q in _anisotropic(rng, 40):
        q = 0.5 * q + 0.5 * vecs[rng.integers(len(vecs))]
        q /= np.linalg.norm(q)
        floor = 0.6
        truth = vecs[alive] @ q
        want = {ids[alive[i]] for i in np.flatnonzero(truth >= floor)}
        got = index.search(q, floor, k=10_000)
        assert {e for e, _ in got} == want
        for e, s in got:
            assert s == pytest.approx(float(vecs[ids.index(e)] @ q), abs=1e-4)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
