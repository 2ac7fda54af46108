"""`workbench route`: route user turns to the top-k tools (`route query`), and score the router on
a labelled set (`route eval`)."""
from __future__ import annotations

import argparse
import sys


def register(sub, common) -> None:
    r = sub.add_parser("route", parents=[common], help="route user turns to tools: `route eval` scores a labelled set")
    s = r.add_subparsers(title="actions", metavar="ACTION", required=True)
    ev = s.add_parser("eval", parents=[common], help="top-1/top-k accuracy, abstention and tokens saved on QUERIES.jsonl")
    ev.add_argument("queries", metavar="QUERIES.jsonl")
    ev.add_argument("--tools", required=True, metavar="TOOLS.json")
    ev.add_argument("--k", type=int, default=None, help="tools sent per turn (default from [routing])")
    ev.add_argument("--threshold", type=float, default=None, help="abstain below this score (default from [routing])")
    ev.add_argument("--calibrate", action="store_true", help="fit the abstain threshold by 2-fold cross-validation")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=route_eval_cmd)
    q = s.add_parser("query", parents=[common], help="route one user turn")
    q.add_argument("text")
    q.add_argument("--tools", required=True, metavar="TOOLS.json")
    q.add_argument("--k", type=int, default=None)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=route_query_cmd)


def _counter(args: argparse.Namespace):
    """Tool-definition tokens are counted with the configured model's tokenizer."""
    from workbench.context import config_for, engine_for

    name = getattr(args, "model", None) or config_for(args)["budget"]["fallback_tokenizer"]
    return engine_for(args, model=name, backend="auto", n_ctx=512)


def route_eval_cmd(args: argparse.Namespace) -> int:
    from engine.embeddings import load_embedder
    from sessions.routing import evaluate, load_queries, load_tools, tool_name
    from workbench.context import config_for, emit

    rcfg = config_for(args)["routing"]
    tools = load_tools(args.tools)
    queries = load_queries(args.queries, {tool_name(t) for t in tools})
    k = args.k or rcfg["k"]
    if k < 1:
        from workbench.cli import CliError

        raise CliError("--k must be at least 1")
    threshold = None if args.calibrate else (args.threshold if args.threshold is not None else rcfg["abstain_threshold"])
    engine = _counter(args)
    try:
        metrics, _ = evaluate(tools, queries, k=k, threshold=threshold, embedder=load_embedder(rcfg["embedding_model"]),
                              count_tokens=engine.count_tokens, lexical_weight=rcfg["lexical_weight"])
        metrics["tools"] = len(tools)
        metrics["tokenizer"] = engine.model_name
    finally:
        engine.close()
    return emit(args, metrics, _print_eval)


def _print_eval(m: dict) -> None:
    pct = lambda x: "-" if x is None else f"{x * 100:.1f}%"  # noqa: E731
    k = m["k"]
    print(f"{m['queries']} queries ({m['queries_without_tool']} with no fitting tool), {m['tools']} tools, k={k}")
    print(f"top-1 {pct(m['top1'])} · top-{k} {pct(m['topk'])} (ranking alone: {pct(m['topk_ranking'])})")
    print(f"abstain threshold {m['abstain_threshold']:.3f}{' (calibrated)' if m['calibrated'] else ''}: "
          f"precision {pct(m['abstain_precision'])} · recall {pct(m['abstain_recall'])}")
    print(f"tool-definition tokens: {m['tool_definition_tokens_sent']} sent of {m['tool_definition_tokens_all']} "
          f"({pct(m['tokens_saved_fraction'])} saved, counted with {m['tokenizer']})")


def route_query_cmd(args: argparse.Namespace) -> int:
    from engine.embeddings import load_embedder
    from sessions.routing import ToolRouter, load_tools
    from workbench.context import config_for, emit

    rcfg = config_for(args)["routing"]
    engine = _counter(args)
    try:
        router = ToolRouter(load_tools(args.tools), args.k or rcfg["k"], rcfg["abstain_threshold"],
                            load_embedder(rcfg["embedding_model"]), engine.count_tokens, rcfg["lexical_weight"])
        route = router.route(args.text)
    finally:
        engine.close()
    return emit(args, route.to_dict(), lambda _: _print_route(route, rcfg["abstain_threshold"]))


def _print_route(route, threshold: float) -> None:
    if route.abstained:
        print(f"no tool fits (best {route.ranked[0]} at {route.scores[0]:.3f} < {threshold}); "
              f"{route.tokens_all} tool tokens saved")
        return
    for n, s in zip(route.tools, route.scores):
        print(f"{s:.3f}  {n}")
    print(f"{route.tokens_sent} of {route.tokens_all} tool-definition tokens sent", file=sys.stderr)
