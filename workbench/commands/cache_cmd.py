"""`workbench cache`: the semantic cache's figures (stats), emptying it (clear), and measuring
its hit and false-hit rates on labelled pairs (eval)."""
from __future__ import annotations

import argparse


def register(sub, common) -> None:
    p = sub.add_parser("cache", parents=[common], help="semantic cache: stats, clear, eval")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=stats_cmd)
    s = p.add_subparsers(title="actions", metavar="ACTION")
    stats = s.add_parser("stats", parents=[common], help="entries, lookups, hit rate, near misses, audits")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=stats_cmd)
    clear = s.add_parser("clear", parents=[common], help="delete cached answers (all, or one model's)")
    clear.add_argument("--for-model", metavar="NAME", dest="for_model", help="only entries of this model")
    clear.add_argument("--json", action="store_true")
    clear.set_defaults(func=clear_cmd)
    ev = s.add_parser("eval", parents=[common],
                      help="hit rate on same-meaning pairs and false-hit rate on the others, per family and threshold")
    ev.add_argument("pairs", nargs="?", metavar="PAIRS.jsonl",
                    help='lines of {"a", "b", "same", "family"} (default: the labelled set shipped with the workbench)')
    ev.add_argument("--threshold", type=float, metavar="X", help="cosine similarity a hit needs (default: config)")
    ev.add_argument("--no-guards", action="store_true", help="similarity only, to see what the guards are worth")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=eval_cmd)


def _cache_config(args: argparse.Namespace):
    from engine.cache.semantic_cache import SemanticCacheConfig
    from workbench.context import config_for

    cfg = SemanticCacheConfig.from_dict(config_for(args)["semantic_cache"])
    if getattr(args, "threshold", None) is not None:
        cfg = SemanticCacheConfig.from_dict({**{k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
                                             "threshold": args.threshold})
    if getattr(args, "no_guards", False):
        cfg.guards = False
        cfg.alignment_guard = False
    return cfg


def stats_cmd(args: argparse.Namespace) -> int:
    from sessions.cache_store import CacheStore
    from workbench.context import emit, open_store

    cfg = _cache_config(args)
    with open_store(args) as store:
        st = CacheStore(store).stats(threshold=cfg.threshold, near_miss_band=cfg.near_miss_band)
    return emit(args, st, _print_stats)


def _print_stats(st: dict) -> None:
    from workbench.tables import fmt, print_table

    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    print(f"entries {st['entries']} in {st['scopes']} scopes · threshold {st['threshold']:.2f}")
    print(f"lookups {st['lookups']} · hits {st['hits']} · hit rate {pct(st['hit_rate'])} · "
          f"p50 lookup {fmt(st['p50_lookup_ms'], 2)} ms")
    print(f"near misses {st['near_misses']} · p50 distance {fmt(st['near_miss_p50_distance'], 3)} · "
          f"min distance {fmt(st['near_miss_min_distance'], 3)}")
    refusals = ", ".join(f"{k} {v}" for k, v in st["refusals"].items()) or "none"
    print(f"refused by guards: {refusals}")
    print(f"audits {st['audits']} · answer differed {st['audit_differed']} ({pct(st['audit_differ_rate'])})")
    if st["by_model"]:
        print()
        print_table(["model", "entries", "hits"], [[r["model"], r["entries"], r["hits"]] for r in st["by_model"]],
                    right={1, 2})


def clear_cmd(args: argparse.Namespace) -> int:
    from sessions.cache_store import CacheStore
    from workbench.context import emit, open_store

    with open_store(args) as store:
        n = CacheStore(store).clear(model=args.for_model)
    return emit(args, {"cleared": n}, lambda d: print(f"cleared {d['cleared']} cached answers"))


def eval_cmd(args: argparse.Namespace) -> int:
    from sessions.cache_eval import builtin_pairs_path, evaluate, load_pairs
    from workbench.context import emit

    cfg = _cache_config(args)
    pairs = load_pairs(args.pairs or builtin_pairs_path())
    return emit(args, evaluate(pairs, cfg), _print_eval)


def _print_eval(r: dict) -> None:
    from workbench.tables import print_table

    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    print(f"{r['pairs']} pairs · threshold {r['threshold']:.2f} · guards {'on' if r['guards'] else 'off'}")
    print(f"hit rate on same-meaning pairs: {pct(r['hit_rate'])} ({r['hits']}/{r['same']})")
    print(f"false-hit rate on the others:   {pct(r['false_hit_rate'])} ({r['false_hits']}/{r['other']})")
    print()
    print_table(
        ["family", "same", "hit rate", "others", "false-hit rate", "refused by guard"],
        [[fam, f["same"], pct(f["hit_rate"]), f["other"], pct(f["false_hit_rate"]),
          ", ".join(f"{k} {v}" for k, v in f["refused_by_guard"].items())]
         for fam, f in r["by_family"].items()],
        right={1, 2, 3, 4},
    )
    print()
    print_table(
        ["threshold", "hit rate", "false-hit rate", "hit rate (no guards)", "false-hit rate (no guards)"],
        [[f"{t['threshold']:.2f}", pct(t["hit_rate"]), pct(t["false_hit_rate"]),
          pct(t["hit_rate_no_guards"]), pct(t["false_hit_rate_no_guards"])] for t in r["by_threshold"]],
        right={0, 1, 2, 3, 4},
    )
    if r["false_hit_examples"]:
        print()
        print("false hits:")
        for ex in r["false_hit_examples"]:
            print(f"  {ex['similarity']:.3f} [{ex['family']}] {ex['a']!r} -> {ex['b']!r}")
