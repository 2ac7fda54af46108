"""Tool routing on data nobody tuned on: MetaTool's tools and user queries (sessions/data/public/,
built by sessions/data/make_public_routing_set.py), split once into a tuning and a report half.
Three routers side by side: plain MiniLM similarity to each description, the zero-shot hybrid
router (descriptions only), and the router with the tuning half's labelled queries as examples.
Abstain thresholds are fitted on the tuning half only. Prints JSON.

    python tests/perf/bench_routing_public.py --half tune     # while choosing weights (2-fold inside the half)
    python tests/perf/bench_routing_public.py --half report   # the figures, once
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "sessions" / "data" / "public"


def _rows(half: str):
    rows = [json.loads(line) for line in (DATA / "metatool_queries.jsonl").read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if r["split"] == half]


def _folds(rows, seed=1):
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    return [rows[i] for i in idx[0::2]], [rows[i] for i in idx[1::2]]


def _plain(tools, rows, emb, k):
    """all-MiniLM-L6-v2 cosine between the query and the description, nothing else."""
    import numpy as np

    from sessions.routing import tool_name

    d = emb.encode([t.get("description") or tool_name(t) for t in tools])
    labelled = [r for r in rows if r["tool"]]
    s = emb.encode([r["query"] for r in labelled]) @ d.T
    top = np.argsort(-s, axis=1)[:, :k]
    names = [tool_name(t) for t in tools]
    return {"topk_ranking": float(np.mean([r["tool"] in {names[j] for j in t} for r, t in zip(labelled, top)])),
            "top1_ranking": float(np.mean([r["tool"] == names[t[0]] for r, t in zip(labelled, top)]))}


def _examples(rows):
    return [(r["query"], r["tool"]) for r in rows if r["tool"]]


def _fit_threshold(tools, fit_rows, emb, k, with_examples: bool):
    """Abstain threshold from the tuning half: with examples, one fold lends the examples and the
    threshold is fitted on the scores of the other (as the report half will be scored)."""
    from sessions.routing import calibrate_threshold, evaluate

    if not with_examples:
        _, routes = evaluate(tools, fit_rows, k=k, threshold=-1.0, embedder=emb)
        return calibrate_threshold([r.scores[0] for r in routes], [q["tool"] for q in fit_rows])
    a, b = _folds(fit_rows)
    ths = []
    for ex, scored in ((a, b), (b, a)):
        _, routes = evaluate(tools, scored, k=k, threshold=-1.0, embedder=emb, examples=_examples(ex))
        ths.append(calibrate_threshold([r.scores[0] for r in routes], [q["tool"] for q in scored]))
    return sum(ths) / len(ths)


KEYS = ("top1", "topk", "top1_ranking", "topk_ranking", "abstain_precision", "abstain_recall", "false_abstain_rate",
        "queries", "queries_with_tool", "queries_without_tool", "examples")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", choices=("tune", "report"), default="report")
    ap.add_argument("--k", type=int, default=5)
    a = ap.parse_args()
    from engine.embeddings import load_embedder
    from sessions.routing import CachedEmbedder, evaluate, load_tools

    tools = load_tools(DATA / "metatool_tools.json")
    emb = CachedEmbedder(load_embedder())
    tune = _rows("tune")
    t0 = time.perf_counter()
    if a.half == "tune":
        # everything inside the tuning half: fold A lends examples and thresholds, fold B is scored
        fit, scored = _folds(tune, seed=2)
        examples = _examples(fit)
    else:
        fit, scored, examples = tune, _rows("report"), _examples(tune)
    out = {"half": a.half, "tools": len(tools), "k": a.k, "plain_minilm": _plain(tools, scored, emb, a.k)}
    th0 = _fit_threshold(tools, fit, emb, a.k, with_examples=False)
    zero, _ = evaluate(tools, scored, k=a.k, threshold=th0, embedder=emb)
    out["zero_shot"] = {**{key: zero[key] for key in KEYS}, "abstain_threshold": th0}
    th1 = _fit_threshold(tools, fit, emb, a.k, with_examples=True)
    learned, _ = evaluate(tools, scored, k=a.k, threshold=th1, embedder=emb, examples=examples)
    out["with_examples"] = {**{key: learned[key] for key in KEYS}, "abstain_threshold": th1}
    out["elapsed_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
