"""`workbench budget` (each LLM call's context window by category, growth, warnings, what a cap
policy would trim) and `workbench route` (route user turns to the top-k tools; score a labelled set)."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def register(sub, common) -> None:
    p = sub.add_parser("budget", parents=[common], help="context-window budget of every LLM call in a trace or session")
    p.add_argument("source", metavar="TRACE_OR_SESSION", help="trace id, session id (unique prefixes), or a trace file")
    p.add_argument("--json", action="store_true", help="one object per LLM call: total_tokens, context_window, categories ...")
    p.add_argument("--tools", metavar="TOOLS.json", help="tool definitions sent with every call (when the trace lacks them)")
    p.add_argument("--policy", action="store_true", help="show what the caps in [budget.caps] would trim, before and after")
    p.add_argument("--cap", action="append", default=[], metavar="CATEGORY=TOKENS", help="a cap for --policy (repeatable; overrides config)")
    p.set_defaults(func=budget_cmd)

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


# ---- tokenizers ----


class _Tokenizers:
    """The model's own tokenizer when the model is local, else the named fallback; engines are
    loaded once per model and closed at the end."""

    def __init__(self, args: argparse.Namespace, cfg: dict[str, Any]):
        self.args, self.cfg = args, cfg
        self._engines: dict[str, Any] = {}
        self._cache: dict[str | None, Any] = {}

    def _engine(self, model: str, n_ctx: int):
        if model not in self._engines:
            from engine import Engine

            self._engines[model] = Engine.load(model=model, backend="auto", n_ctx=n_ctx)
        return self._engines[model]

    def __call__(self, model: str | None):
        from sessions.budget import BudgetTokenizer

        if model in self._cache:
            return self._cache[model]
        forced = getattr(self.args, "model", None)
        local = forced or (model if _is_local(model) else None)
        if local:
            from workbench.context import config_for

            n_ctx = config_for(self.args)["engine"]["n_ctx"]
            tok = BudgetTokenizer.from_engine(self._engine(local, n_ctx))
        else:
            tok = BudgetTokenizer.from_engine(self._engine(self.cfg["fallback_tokenizer"], 512), stands_in_for=model or "unknown model")
        self._cache[model] = tok
        return tok

    def close(self) -> None:
        for e in self._engines.values():
            e.close()


def _is_local(model: str | None) -> bool:
    if not model:
        return False
    from engine.model_source import resolve_model
    from engine.types import EngineError

    try:
        return resolve_model(model).kind in ("gguf", "hf_dir")
    except EngineError:
        return False


# ---- budget ----


def _load_calls(args: argparse.Namespace, store) -> list[tuple[str, list]]:
    from sessions.budget import calls_from_session, calls_from_trace
    from sessions.store import StoreError
    from sessions.traces.store import load_trace, resolve_trace_id

    if os.path.isfile(args.source):
        from sessions.traces.importers import parse_file

        return [(f"trace {t.trace_id}", calls_from_trace(t)) for t in parse_file(args.source).traces]
    try:
        tid = resolve_trace_id(store, args.source)
    except StoreError as e:
        if "ambiguous" in str(e):
            raise
        sid, calls = calls_from_session(store, args.source)
        return [(f"session {sid}", calls)]
    return [(f"trace {tid}", calls_from_trace(load_trace(store, tid)))]


def budget_config(args: argparse.Namespace):
    from sessions.budget import BudgetConfig
    from workbench.context import config_for

    d = dict(config_for(args)["budget"])
    caps = dict(d.get("caps") or {})
    for c in getattr(args, "cap", []) or []:
        name, _, value = c.partition("=")
        try:
            caps[name.strip()] = int(value)
        except ValueError:
            from sessions.budget import BudgetError

            raise BudgetError(f"--cap {c!r}: expected CATEGORY=TOKENS, e.g. tool_results=2000") from None
    d["caps"] = caps
    return BudgetConfig.from_dict(d)


def budget_cmd(args: argparse.Namespace) -> int:
    from sessions.budget import budget_rows
    from sessions.routing import load_tools
    from workbench.context import open_store, print_json

    cfg = budget_config(args)
    tools = load_tools(args.tools) if args.tools else None
    with open_store(args) as store:
        sources = _load_calls(args, store)
    toks = _Tokenizers(args, vars_cfg(cfg))
    try:
        out: list[dict[str, Any]] = []
        for source, calls in sources:
            if tools is not None:
                for c in calls:
                    c.tools = tools
            out.extend(budget_rows(source, calls, toks, cfg, policy=args.policy))
    finally:
        toks.close()
    if args.json:
        print_json(out)
    else:
        _print_budget(out, args.policy)
    return 0


def vars_cfg(cfg) -> dict[str, Any]:
    return {"fallback_tokenizer": cfg.fallback_tokenizer}


_SHORT = {"system_prompt": "sys", "tool_definitions": "tools", "history": "hist", "tool_results": "results",
          "retrieved_documents": "docs", "current_user_turn": "turn", "template_overhead": "tmpl"}


def _print_budget(rows: list[dict[str, Any]], policy: bool) -> None:
    from workbench.tables import render_table

    if not rows:
        print("no LLM calls with recorded input")
        return
    last_source = None
    for r in rows:
        if r["source"] != last_source:
            last_source = r["source"]
            print(f"{r['source']} · tokenizer {r['tokenizer']} · window {r['context_window']} ({r['context_window_source']})")
            step = r["overflow_step"]
            print(f"  overflow: {'none projected' if step is None else ('at step ' + str(step)) + (' (projected)' if r['overflow_projected'] else '')}")
    cats = list(_SHORT)
    print(render_table(["step", "total", *[_SHORT[c] for c in cats], "reserve", "free", "warnings"],
                       [[r["step"], r["total_tokens"], *[r["categories"][c] for c in cats], r["output_reserve"], r["free_tokens"],
                         ", ".join(w["kind"] for w in r["warnings"])] for r in rows], right=set(range(len(cats) + 4))))
    for r in rows:
        for w in r["warnings"]:
            print(f"  step {r['step']}: {w['kind']}: {w['message']}")
        if policy and r["policy"]["actions"]:
            p = r["policy"]
            print(f"  step {r['step']}: policy trims {sum(a['tokens'] for a in p['actions'])} tokens: "
                  + "; ".join(f"{a['action']} {a['category']} {a['messages'] or a['detail']}" for a in p["actions"])
                  + f" -> {p['after']['total_tokens']} tokens")


# ---- route ----


def _counter(args: argparse.Namespace):
    """Tool-definition tokens are counted with the configured model's tokenizer."""
    from workbench.context import config_for

    from engine import Engine

    name = getattr(args, "model", None) or config_for(args)["budget"]["fallback_tokenizer"]
    return Engine.load(model=name, backend="auto", n_ctx=512)


def route_eval_cmd(args: argparse.Namespace) -> int:
    from engine.embeddings import load_embedder
    from sessions.routing import evaluate, load_queries, load_tools, tool_name
    from workbench.context import config_for, print_json

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
    if args.json:
        print_json(metrics)
        return 0
    pct = lambda x: "-" if x is None else f"{x * 100:.1f}%"  # noqa: E731
    print(f"{metrics['queries']} queries ({metrics['queries_without_tool']} with no fitting tool), {len(tools)} tools, k={k}")
    print(f"top-1 {pct(metrics['top1'])} · top-{k} {pct(metrics['topk'])} (ranking alone: {pct(metrics['topk_ranking'])})")
    print(f"abstain threshold {metrics['abstain_threshold']:.3f}{' (calibrated)' if metrics['calibrated'] else ''}: "
          f"precision {pct(metrics['abstain_precision'])} · recall {pct(metrics['abstain_recall'])}")
    print(f"tool-definition tokens: {metrics['tool_definition_tokens_sent']} sent of {metrics['tool_definition_tokens_all']} "
          f"({pct(metrics['tokens_saved_fraction'])} saved, counted with {metrics['tokenizer']})")
    return 0


def route_query_cmd(args: argparse.Namespace) -> int:
    from engine.embeddings import load_embedder
    from sessions.routing import ToolRouter, load_tools
    from workbench.context import config_for, print_json

    rcfg = config_for(args)["routing"]
    engine = _counter(args)
    try:
        router = ToolRouter(load_tools(args.tools), args.k or rcfg["k"], rcfg["abstain_threshold"],
                            load_embedder(rcfg["embedding_model"]), engine.count_tokens, rcfg["lexical_weight"])
        route = router.route(args.text)
    finally:
        engine.close()
    if args.json:
        print_json(route.to_dict())
    elif route.abstained:
        print(f"no tool fits (best {route.ranked[0]} at {route.scores[0]:.3f} < {rcfg['abstain_threshold']}); "
              f"{route.tokens_all} tool tokens saved")
    else:
        for n, s in zip(route.tools, route.scores):
            print(f"{s:.3f}  {n}")
        print(f"{route.tokens_sent} of {route.tokens_all} tool-definition tokens sent", file=sys.stderr)
    return 0
