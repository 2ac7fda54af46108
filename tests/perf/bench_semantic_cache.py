"""Semantic cache lookup latency at 100,000 entries: the exact pruned index against a plain
full scan (numpy M @ q) in the same run, plus the whole lookup with the embedding. Prints JSON.

Run: PYTHONPATH=. python tests/perf/bench_semantic_cache.py [--entries 100000] [--queries 200]"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def _pct(xs, q):
    return float(np.percentile(xs, q))


def _time(fn, queries):
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": _pct(out, 50), "p95_ms": _pct(out, 95), "mean_ms": statistics.fmean(out)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threshold", type=float, default=0.88)
    ap.add_argument("--lead-dims", type=int, default=None, help="override VectorIndex.lead_dims")
    args = ap.parse_args()

    from engine.embeddings import load_embedder
    from engine.cache.semantic_cache import CacheScope, SemanticCache, SemanticCacheConfig, VectorIndex
    from sessions.cache_eval import builtin_pairs_path, load_pairs

    if args.lead_dims:
        VectorIndex.lead_dims = args.lead_dims
    emb = load_embedder()
    texts = sorted({t for p in load_pairs(builtin_pairs_path()) for t in (p.a, p.b)})
    real = emb.encode(texts)
    rng = np.random.default_rng(0)
    # Entries shaped like real prompt embeddings: mixtures of two real ones plus a little noise.
    i, j = rng.integers(len(real), size=(2, args.entries))
    w = rng.uniform(0.2, 1.0, size=(args.entries, 1)).astype(np.float32)
    rows = real[i] + w * real[j] + 0.05 * rng.standard_normal((args.entries, real.shape[1])).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    queries = real[rng.integers(len(real), size=args.queries)]
    floor = args.threshold - 0.1

    t0 = time.perf_counter()
    index = VectorIndex(rows.shape[1])
    index.add_many([f"e{k}" for k in range(len(rows))], rows)
    build_s = time.perf_counter() - t0
    full = np.ascontiguousarray(rows)

    def brute(q):
        s = full @ q
        cand = np.flatnonzero(s >= floor)
        return cand[np.argsort(-s[cand])][:16]

    for q in queries[:5]:  # warm caches and check exactness on the way
        want = {f"e{k}" for k in brute(q)}
        got = {e for e, _ in index.search(q, floor, k=16)}
        assert got == want, "pruned search disagrees with the full scan"
    result = {
        "entries": args.entries,
        "lead_dims": VectorIndex.lead_dims,
        "dim": int(rows.shape[1]),
        "threshold": args.threshold,
        "index_build_s": build_s,
        "full_scan": _time(brute, queries),
        "pruned_index": _time(lambda q: index.search(q, floor), queries),
    }
    result["speedup_vs_full_scan"] = result["full_scan"]["p50_ms"] / result["pruned_index"]["p50_ms"]

    # Worst case for the bound: isotropic random unit vectors (no real embedder makes these).
    iso = rng.standard_normal(rows.shape).astype(np.float32)
    iso /= np.linalg.norm(iso, axis=1, keepdims=True)
    iso_index = VectorIndex(rows.shape[1])
    iso_index.add_many([f"e{k}" for k in range(len(iso))], iso)
    result["pruned_index_isotropic_worst_case"] = _time(lambda q: iso_index.search(q, floor), queries)
    del iso, iso_index

    # The whole lookup, embedding included, in a cache of the same size.
    cache = SemanticCache(SemanticCacheConfig(threshold=args.threshold, max_entries=args.entries + 1), embedder=emb)
    scope = CacheScope("bench", "none", "none", "none", "greedy")
    cache._indexes[scope.key] = index
    from engine.cache.semantic_cache import CacheEntry

    for k in range(len(rows)):
        cache._entries[f"e{k}"] = CacheEntry(f"e{k}", scope.key, "bench", texts[i[k]], "a", None, time.time(), time.time())
        cache._lru[f"e{k}"] = None
    sample = texts[:50]
    result["lookup_with_embedding"] = _time(lambda t: cache.lookup(t, scope), sample)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
