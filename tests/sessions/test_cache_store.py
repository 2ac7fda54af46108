"""The semantic cache kept in a real DuckDB file: entries survive a reopen, eviction and clear
reach the file, lookups and audits are recorded for `workbench cache stats`."""
from __future__ import annotations

import numpy as np
import pytest

from engine.cache.semantic_cache import SemanticCache, SemanticCacheConfig
from engine.types import SamplingParams
from sessions.cache_store import CacheStore
from sessions.store import Store

GREEDY = SamplingParams(max_tokens=32, temperature=0.0)


@pytest.fixture(scope="module")
def embedder():
    from engine.embeddings import load_embedder

    return load_embedder()


def _open(path, embedder, **cfg):
    store = Store(path)
    return store, SemanticCache(SemanticCacheConfig(**cfg), backing=CacheStore(store), embedder=embedder)


def test_entries_survive_a_reopen_and_answer_paraphrases(tmp_path, embedder):
    path = tmp_path / "wb.duckdb"
    store, cache = _open(path, embedder)
    q = "How do I install pandas with pip?"
    cache.store(q, cache.scope_for("smollm2-135m", q, GREEDY), "pip install pandas")
    store.close()

    store, cache = _open(path, embedder)
    assert len(cache) == 1
    para = "What's the pip command to install pandas?"
    hit = cache.lookup(para, cache.scope_for("smollm2-135m", para, GREEDY))
    assert hit is not None and hit.answer == "pip install pandas"
    assert cache.lookup(para, cache.scope_for("other-model", para, GREEDY)) is None
    row = store.execute("SELECT hits, dim, model FROM semantic_cache_entries").fetchone()
    assert row == (1, 384, "smollm2-135m")
    st = CacheStore(store).stats()
    assert (st["entries"], st["lookups"], st["hits"], st["hit_rate"]) == (1, 2, 1, 0.5)
    store.close()


def test_eviction_expiry_and_clear_reach_the_file(tmp_path, embedder):
    path = tmp_path / "wb.duckdb"
    clock = [1_700_000_000.0]
    store = Store(path)
    cache = SemanticCache(SemanticCacheConfig(max_entries=2, ttl_s=100), backing=CacheStore(store),
                          embedder=embedder, clock=lambda: clock[0])
    for i, q in enumerate(["Who wrote Hamlet?", "What is the speed of light?", "How tall is Everest?"]):
        clock[0] += 1
        cache.store(q, cache.scope_for("m", q, GREEDY), f"answer {i}")
    prompts = [p for (p,) in store.execute("SELECT prompt FROM semantic_cache_entries ORDER BY prompt").fetchall()]
    assert prompts == ["How tall is Everest?", "What is the speed of light?"]
    store.close()

    clock[0] += 99.5  # the older of the two is now past its TTL
    store = Store(path)
    cache = SemanticCache(SemanticCacheConfig(max_entries=2, ttl_s=100), backing=CacheStore(store),
                          embedder=embedder, clock=lambda: clock[0])
    assert len(cache) == 1
    assert store.execute("SELECT count(*) FROM semantic_cache_entries").fetchone()[0] == 1
    assert cache.clear() == 1
    assert store.execute("SELECT count(*) FROM semantic_cache_entries").fetchone()[0] == 0
    store.close()


def test_audits_and_refusals_are_recorded(tmp_path, embedder):
    store, cache = _open(tmp_path / "wb.duckdb", embedder, audit_rate=1.0, threshold=0.8)
    q = "Which foods contain gluten?"
    cache.store(q, cache.scope_for("m", q, GREEDY), "Bread and pasta.")
    neg = "Which foods don't contain gluten?"
    assert cache.lookup(neg, cache.scope_for("m", neg, GREEDY)) is None
    hit = cache.lookup(q, cache.scope_for("m", q, GREEDY))
    assert hit is not None and hit.audit
    cache.record_audit(hit, "Wheat, barley and rye.", q)
    st = CacheStore(store).stats()
    assert st["refusals"] == {"negation": 1}
    assert (st["audits"], st["audit_differed"]) == (1, 1)
    assert st["near_misses"] == 1 and 0 < st["near_miss_min_distance"] < 0.2
    row = store.execute("SELECT differed, cached_answer, fresh_answer FROM semantic_cache_audits").fetchone()
    assert row == (True, "Bread and pasta.", "Wheat, barley and rye.")
    store.close()


def test_bulk_put_and_load_round_trip_vectors(tmp_path):
    from engine.cache.semantic_cache import CacheEntry

    store = Store(tmp_path / "wb.duckdb")
    cs = CacheStore(store)
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((50, 384)).astype(np.float32)
    cs.put_many([CacheEntry(f"e{i}", "s", "m", f"p{i}", f"a{i}", vecs[i], 1.0, 2.0) for i in range(50)])
    loaded = sorted(cs.load_entries(), key=lambda e: int(e.entry_id[1:]))
    assert [e.prompt for e in loaded] == [f"p{i}" for i in range(50)]
    assert np.array_equal(np.stack([e.vector for e in loaded]), vecs)
    cs.delete([f"e{i}" for i in range(10)])
    assert len(list(cs.load_entries())) == 40
    store.close()
