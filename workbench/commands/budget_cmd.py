"""`workbench budget`: each LLM call's context window by category, growth, warnings, and what a cap
policy would trim."""
from __future__ import annotations

import argparse
import os
from typing import Any


def register(sub, common) -> None:
    p = sub.add_parser("budget", parents=[common], help="context-window budget of every LLM call in a trace or session")
    p.add_argument("source", metavar="TRACE_OR_SESSION", help="trace id, session id (unique prefixes), or a trace file")
    p.add_argument("--json", action="store_true", help="one object per LLM call: total_tokens, context_window, categories ...")
    p.add_argument("--tools", metavar="TOOLS.json", help="tool definitions sent with every call (when the trace lacks them)")
    p.add_argument("--policy", action="store_true", help="show what the caps in [budget.caps] would trim, before and after")
    p.add_argument("--cap", action="append", default=[], metavar="CATEGORY=TOKENS", help="a cap for --policy (repeatable; overrides config)")
    p.set_defaults(func=budget_cmd)


# ---- tokenizers ----


class _Tokenizers:
    """The model's own tokenizer when the model is local, else the named fallback; engines are
    loaded once per model and closed at the end."""

    def __init__(self, args: argparse.Namespace, cfg: dict[str, Any]):
        self.args, self.cfg = args, cfg
        self._engines: dict[str, Any] = {}
        self._cache: dict[str | None, Any] = {}

    def _engine(self, model: str, **options: Any):
        if model not in self._engines:
            from workbench.context import engine_for

            self._engines[model] = engine_for(self.args, model=model, backend="auto", **options)
        return self._engines[model]

    def __call__(self, model: str | None):
        from sessions.budget import BudgetTokenizer

        if model in self._cache:
            return self._cache[model]
        forced = getattr(self.args, "model", None)
        local = forced or (model if _is_local(model) else None)
        if local:
            tok = BudgetTokenizer.from_engine(self._engine(local))
        else:
            tok = BudgetTokenizer.from_engine(self._engine(self.cfg["fallback_tokenizer"], n_ctx=512),
                                              stands_in_for=model or "unknown model")
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
    from workbench.context import emit, open_store

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
    return emit(args, out, lambda rows: _print_budget(rows, args.policy), empty="no LLM calls with recorded input")


def vars_cfg(cfg) -> dict[str, Any]:
    return {"fallback_tokenizer": cfg.fallback_tokenizer}


_SHORT = {"system_prompt": "sys", "tool_definitions": "tools", "history": "hist", "tool_results": "results",
          "retrieved_documents": "docs", "current_user_turn": "turn", "template_overhead": "tmpl"}


def _print_budget(rows: list[dict[str, Any]], policy: bool) -> None:
    from workbench.tables import print_table

    last_source = None
    for r in rows:
        if r["source"] != last_source:
            last_source = r["source"]
            print(f"{r['source']} · tokenizer {r['tokenizer']} · window {r['context_window']} ({r['context_window_source']})")
            step = r["overflow_step"]
            print(f"  overflow: {'none projected' if step is None else ('at step ' + str(step)) + (' (projected)' if r['overflow_projected'] else '')}")
    cats = list(_SHORT)
    print_table(["step", "total", *[_SHORT[c] for c in cats], "reserve", "free", "warnings"],
                [[r["step"], r["total_tokens"], *[r["categories"][c] for c in cats], r["output_reserve"], r["free_tokens"],
                  ", ".join(w["kind"] for w in r["warnings"])] for r in rows], right=set(range(len(cats) + 4)))
    for r in rows:
        for w in r["warnings"]:
            print(f"  step {r['step']}: {w['kind']}: {w['message']}")
        if policy and r["policy"]["actions"]:
            p = r["policy"]
            print(f"  step {r['step']}: policy trims {sum(a['tokens'] for a in p['actions'])} tokens: "
                  + "; ".join(f"{a['action']} {a['category']} {a['messages'] or a['detail']}" for a in p["actions"])
                  + f" -> {p['after']['total_tokens']} tokens")
