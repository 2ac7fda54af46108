"""Semantic cache hits and false hits on pairs nobody tuned on: CheckList's QQP suite (sessions/
data/public/qqp_checklist_pairs.jsonl, built by sessions/data/make_public_cache_pairs.py), split once
into a tuning and a report half, beside the repo's own pairs. Similarity alone, the lexical guards,
and the lexical plus alignment guards, at each threshold. Prints JSON.

    python tests/perf/bench_semantic_cache_public.py --half tune     # while fitting the guard's thresholds
    python tests/perf/bench_semantic_cache_public.py --half report   # the figures, once
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _public(half: str):
    from sessions.cache_eval import Pair

    rows = [json.loads(line) for line in
            (ROOT / "sessions" / "data" / "public" / "qqp_checklist_pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    return [Pair(r["a"], r["b"], r["same"], r["family"]) for r in rows if r["split"] == half]


def _figures(pairs, threshold, emb, families: bool):
    from engine.cache.semantic_cache import SemanticCacheConfig
    from sessions.cache_eval import evaluate

    out = {}
    for name, cfg in (("similarity_only", SemanticCacheConfig(threshold=threshold, guards=False, alignment_guard=False)),
                      ("lexical_guards", SemanticCacheConfig(threshold=threshold, alignment_guard=False)),
                      ("lexical_and_alignment_guards", SemanticCacheConfig(threshold=threshold))):
        r = evaluate(pairs, cfg, emb)
        out[name] = {"hit_rate": r["hit_rate"], "false_hit_rate": r["false_hit_rate"], "hits": r["hits"],
                     "same": r["same"], "false_hits": r["false_hits"], "other": r["other"]}
        if families and name == "lexical_and_alignment_guards":
            out["by_family"] = {f: {k: v[k] for k in ("hits", "same", "false_hits", "other")}
                                for f, v in r["by_family"].items()}
            out["false_hit_examples"] = r["false_hit_examples"][:10]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", choices=("tune", "report"), default="report")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.84, 0.88])
    a = ap.parse_args()
    from engine.embeddings import load_embedder
    from sessions.cache_eval import builtin_pairs_path, load_pairs

    emb = load_embedder()
    public, own = _public(a.half), load_pairs(builtin_pairs_path())
    t0 = time.perf_counter()
    out = {"half": a.half, "public_pairs": len(public), "own_pairs": len(own), "public": {}, "own": {}}
    for th in a.thresholds:
        out["public"][str(th)] = _figures(public, th, emb, families=th == a.thresholds[0])
        out["own"][str(th)] = _figures(own, th, emb, families=False)
    out["elapsed_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
