"""`workbench route`: route user turns to the top-k tools (`route query`), score the router on a
labelled set (`route eval`), and learn (user turn -> tool called) examples from imported traces
or a labelled file (`route learn`, listed by `route examples`); query and eval use what was learned."""
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
    ev.add_argument("--no-examples", action="store_true", help="descriptions only, not the learned examples")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=route_eval_cmd)
    q = s.add_parser("query", parents=[common], help="route one user turn")
    q.add_argument("text")
    q.add_argument("--tools", required=True, metavar="TOOLS.json")
    q.add_argument("--k", type=int, default=None)
    q.add_argument("--threshold", type=float, default=None, help="abstain below this score (default from [routing])")
    q.add_argument("--no-examples", action="store_true", help="descriptions only, not the learned examples")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=route_query_cmd)
    ln = s.add_parser("learn", parents=[common],
                      help="store (user turn -> tool called) examples from imported traces (all, or the ids given)")
    ln.add_argument("traces", nargs="*", metavar="TRACE", help="trace id or prefix (see `workbench traces`); default all")
    ln.add_argument("--from-file", metavar="QUERIES.jsonl", help='labelled turns {"query", "tool"} instead of traces')
    ln.add_argument("--json", action="store_true")
    ln.set_defaults(func=route_learn_cmd)
    ex = s.add_parser("examples", parents=[common], help="the learned examples per tool")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=route_examples_cmd)


def _counter(args: argparse.Namespace):
    """Tool-definition tokens are counted with the configured model's tokenizer."""
    from workbench.context import config_for, engine_for

    name = getattr(args, "model", None) or config_for(args)["budget"]["fallback_tokenizer"]
    return engine_for(args, model=name, backend="auto", n_ctx=512)


def _examples(args: argparse.Namespace, tool_names: list[str], exclude: set[str] = frozenset()) -> list[tuple[str, str]]:
    """The learned examples of these tools, none with --no-examples or when there is no database yet."""
    from pathlib import Path

    from sessions.routing_examples import load_examples
    from workbench.context import db_path, open_store

    if getattr(args, "no_examples", False):
        return []
    path = db_path(args)
    if path is not None and not Path(path).expanduser().exists():
        return []
    from sessions.store import default_db_path

    if path is None and not default_db_path().exists():
        return []
    with open_store(args, read_only=True) as store:
        return [(q, t) for q, t in load_examples(store, tool_names) if q not in exclude]


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
        # an example that is also a scored query would find itself: leave those out
        examples = _examples(args, [tool_name(t) for t in tools], {q["query"] for q in queries})
        metrics, _ = evaluate(tools, queries, k=k, threshold=threshold, embedder=load_embedder(rcfg["embedding_model"]),
                              count_tokens=engine.count_tokens, lexical_weight=rcfg["lexical_weight"], examples=examples)
        metrics["tools"] = len(tools)
        metrics["tokenizer"] = engine.model_name
    finally:
        engine.close()
    return emit(args, metrics, _print_eval)


def _print_eval(m: dict) -> None:
    pct = lambda x: "-" if x is None else f"{x * 100:.1f}%"  # noqa: E731
    k = m["k"]
    print(f"{m['queries']} queries ({m['queries_without_tool']} with no fitting tool), {m['tools']} tools, k={k}, "
          f"{m['examples']} learned examples")
    print(f"top-1 {pct(m['top1'])} · top-{k} {pct(m['topk'])} (ranking alone: {pct(m['topk_ranking'])})")
    print(f"abstain threshold {m['abstain_threshold']:.3f}{' (calibrated)' if m['calibrated'] else ''}: "
          f"precision {pct(m['abstain_precision'])} · recall {pct(m['abstain_recall'])}")
    print(f"tool-definition tokens: {m['tool_definition_tokens_sent']} sent of {m['tool_definition_tokens_all']} "
          f"({pct(m['tokens_saved_fraction'])} saved, counted with {m['tokenizer']})")


def route_query_cmd(args: argparse.Namespace) -> int:
    from engine.embeddings import load_embedder
    from sessions.routing import ToolRouter, load_tools, tool_name
    from workbench.context import config_for, emit

    rcfg = config_for(args)["routing"]
    if args.k is not None and args.k < 1:
        from workbench.cli import CliError

        raise CliError("--k must be at least 1")
    tools = load_tools(args.tools)
    examples = _examples(args, [tool_name(t) for t in tools])
    threshold = args.threshold if args.threshold is not None else (
        rcfg["abstain_threshold_with_examples"] if examples else rcfg["abstain_threshold"])
    engine = _counter(args)
    try:
        router = ToolRouter(tools, args.k or rcfg["k"], threshold, load_embedder(rcfg["embedding_model"]),
                            engine.count_tokens, rcfg["lexical_weight"], examples)
        route = router.route(args.text)
    finally:
        engine.close()
    out = {**route.to_dict(), "examples": router.example_count, "abstain_threshold": threshold}
    return emit(args, out, lambda _: _print_route(route, threshold, router.example_count))


def _print_route(route, threshold: float, examples: int) -> None:
    if examples:
        print(f"({examples} learned examples)", file=sys.stderr)
    if route.abstained:
        print(f"no tool fits (best {route.ranked[0]} at {route.scores[0]:.3f} < {threshold}); "
              f"{route.tokens_all} tool tokens saved")
        return
    for n, s in zip(route.tools, route.scores):
        print(f"{s:.3f}  {n}")
    print(f"{route.tokens_sent} of {route.tokens_all} tool-definition tokens sent", file=sys.stderr)


def route_learn_cmd(args: argparse.Namespace) -> int:
    from sessions.routing import load_queries
    from sessions.routing_examples import RouteExample, examples_from_trace, save_examples
    from sessions.traces.store import load_trace, resolve_trace_id, trace_ids
    from workbench.context import emit, open_store

    with open_store(args) as store:
        if args.from_file:
            if args.traces:
                from workbench.cli import CliError

                raise CliError("give trace ids or --from-file, not both")
            rows = [RouteExample(q["query"], q["tool"], "file") for q in load_queries(args.from_file) if q["tool"]]
            traces_read = 0
        else:
            ids = [resolve_trace_id(store, t) for t in args.traces] if args.traces else trace_ids(store)
            if not ids:
                from workbench.cli import CliError

                raise CliError("no imported traces to learn from (import some with `workbench import FILE`)")
            rows = [e for tid in dict.fromkeys(ids) for e in examples_from_trace(load_trace(store, tid))]
            traces_read = len(set(ids))
        new = save_examples(store, rows)
        total = store.execute("SELECT count(*) FROM route_examples").fetchone()[0]
    out = {"traces": traces_read, "examples_found": len(rows), "new": new, "stored": total,
           "tools": len({e.tool for e in rows})}
    source = args.from_file or f"{traces_read} trace(s)"
    return emit(args, out, lambda o: print(
        f"{o['examples_found']} example(s) of {o['tools']} tool(s) from {source}: {o['new']} new, {o['stored']} stored"))


def route_examples_cmd(args: argparse.Namespace) -> int:
    from sessions.routing_examples import example_counts
    from workbench.context import emit, open_store

    with open_store(args, read_only=True) as store:
        rows = example_counts(store)

    def show(rows) -> None:
        for r in rows:
            print(f"{r['examples']:5d}  {r['tool']}  ({r['traces']} trace(s); {', '.join(r['sources'])})")
    return emit(args, rows, show, empty="no routing examples yet (see `workbench route learn`)")
