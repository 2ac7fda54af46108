"""`workbench latency`: where the p95 of a bench run, a session or a timed trace goes: stages,
the `[slo]` budgets each percentile blows and by which stage, and what the tail requests share."""
from __future__ import annotations

import argparse
from typing import Any


def register(sub, common) -> None:
    p = sub.add_parser("latency", parents=[common],
                       help="latency budget and tail attribution of a bench run, session or timed trace")
    p.add_argument("ref", metavar="RUN|SESSION|TRACE", help="bench run, session or trace id (a unique prefix is enough)")
    p.add_argument("--json", action="store_true", help="the whole analysis as JSON, with one row per request or step")
    p.add_argument("--slo", metavar="BUDGETS", default=None,
                   help="budgets over the config's [slo], e.g. ttft_p95_ms=500,e2el_p99_ms=3000")
    p.set_defaults(func=run)


def budgets_for(args: argparse.Namespace) -> dict[str, float]:
    """The config's [slo] table, then --slo on top of it."""
    from sessions.latency import BadBudgetError, check_budgets, parse_budget_key
    from workbench.context import config_for

    out: dict[str, Any] = dict(config_for(args).get("slo") or {})
    for part in (getattr(args, "slo", None) or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        try:
            limit = float(value)
        except ValueError:
            limit = None
        if not sep or limit is None:
            raise BadBudgetError(f"--slo {part.strip()!r}: write it as name=milliseconds, e.g. ttft_p95_ms=500")
        parse_budget_key(key)
        out[key] = limit
    return check_budgets(out)


def run(args: argparse.Namespace) -> int:
    from sessions.latency import latency_report
    from workbench.commands.sessions_cmd import _exists
    from workbench.context import emit, open_store

    budgets = budgets_for(args)
    with open_store(args, read_only=_exists(args)) as store:
        report = latency_report(store, args.ref, budgets)
    return emit(args, report.to_dict(), lambda _: print_latency(report))


def print_latency(report) -> None:
    from workbench.tables import print_table

    what = {"run": "bench run", "session": "session", "trace": "trace"}[report.kind]
    span = f" · {report.duration_ms:.0f} ms" if report.duration_ms is not None else ""
    print(f"{what} {report.ref}  {report.title}  ({report.n} {report.unit}s{span})")
    print()
    rows = [report.e2el, *report.stages, *report.derived]
    print_table(["stage", "p50 ms", "p95 ms", "p99 ms", "mean ms", "share of p95", "note"],
                [[s.name if s is not report.e2el else ("step" if report.unit == "step" else "e2el"), s.p50_ms, s.p95_ms,
                  s.p99_ms, s.mean_ms, f"{s.share_of_p95:.0%}", s.note] for s in rows], right={1, 2, 3, 4, 5})
    if report.budgets:
        print()
        print_table(["budget", "limit ms", "value ms", "", "stage"],
                    [[b.metric, b.limit_ms, b.value_ms, "ok" if b.ok else "BLOWN", b.stage] for b in report.budgets],
                    right={1, 2})
    print()
    print(f"tail: {len(report.tail_ids)} {report.unit}(s) at or above the p95 ({report.e2el.p95_ms:.0f} ms)")
    print_table(["feature", "tail median", "rest median", "p (Holm)", "", "note"],
                [[f.feature, f"{f.tail_value:.0%}" if f.binary else f.tail_value,
                  f"{f.rest_value:.0%}" if f.binary else f.rest_value,
                  "-" if f.p_value is None else f"{f.p_value:.3g}", "*" if f.significant else "", f.note]
                 for f in report.tail], right={1, 2, 3})
    for n in report.notes:
        print(f"note: {n}")
    print()
    print(report.verdict())
