"""Tool routing on the labelled set: accuracy at k, abstention, accuracy as the tool list grows
from 20 to every tool, and the tool-definition tokens the model no longer sees. Prints JSON.

    python tests/perf/bench_routing.py [--k 5]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    from engine import Engine
    from engine.embeddings import load_embedder
    from sessions.routing import CachedEmbedder, evaluate, load_queries, load_tools, subset_accuracy, tool_name

    data = ROOT / "sessions" / "data"
    tools = load_tools(data / "routing_tools.json")
    queries = load_queries(data / "routing_queries.jsonl", {tool_name(t) for t in tools})
    emb = CachedEmbedder(load_embedder())
    eng = Engine.load("smollm2-135m", backend="llamacpp", n_ctx=512)
    try:
        t0 = time.perf_counter()
        full, _ = evaluate(tools, queries, k=a.k, embedder=emb, count_tokens=eng.count_tokens)
        eval_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sizes = subset_accuracy(tools, queries, [20, 40, len(tools)], k=a.k, threshold=full["abstain_threshold"],
                                embedder=emb, repeats=a.repeats)
        scale_s = time.perf_counter() - t0
    finally:
        eng.close()
    small, big = sizes[0], sizes[-1]
    print(json.dumps({
        "tools": len(tools), "queries": len(queries), "k": a.k, "tokenizer": "smollm2-135m",
        **{key: full[key] for key in ("top1", "topk", "top1_ranking", "topk_ranking", "abstain_precision", "abstain_recall",
                                     "false_abstain_rate", "abstain_threshold", "fold_thresholds",
                                     "tool_definition_tokens_all", "tool_definition_tokens_sent", "tokens_saved_fraction")},
        "by_tool_count": sizes,
        "topk_drop_points_20_to_all": round((small["topk"] - big["topk"]) * 100, 2),
        "top1_drop_points_20_to_all": round((small["top1"] - big["top1"]) * 100, 2),
        "eval_s": round(eval_s, 2), "scaling_s": round(scale_s, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
