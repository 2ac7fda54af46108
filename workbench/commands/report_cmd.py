"""`workbench report`: a latency report of a bench run or any session (html, md, json, csv),
with SLO checks (exit status 1 when one fails, for CI) and comparison with another run."""
from __future__ import annotations

import argparse
import os
import sys

EXIT_SLO_FAILED = 1


def register(sub, common) -> None:
    p = sub.add_parser("report", parents=[common], help="latency report of a bench run or session (html, md, json, csv)")
    p.add_argument("run", metavar="RUN_OR_SESSION", help="bench run or session id (a unique prefix is enough)")
    p.add_argument("--format", choices=["html", "md", "json", "csv"], default=None,
                   help="default: from the --out file's extension, else md")
    p.add_argument("--out", metavar="FILE", default=None, help="write here (default: stdout)")
    p.add_argument("--slo", metavar="LIMITS", default=None,
                   help="e.g. ttft_ms=500,tpot_ms=50,e2el_ms=3000 (each request) or p95_ttft_ms=400 (a summary field)")
    p.add_argument("--compare", metavar="OTHER_RUN", default=None, help="show deltas against another run, with a noise verdict")
    p.set_defaults(func=run)


def _format(args: argparse.Namespace) -> str:
    return format_for(args.out, args.format)


def format_for(path: str | None, fmt: str | None = None) -> str:
    """The format asked for, else the one the file's extension names, else Markdown."""
    if fmt:
        return fmt
    ext = os.path.splitext(path or "")[1].lower().lstrip(".")
    return {"htm": "html", "markdown": "md"}.get(ext, ext) if ext in ("html", "htm", "md", "markdown", "json", "csv") else "md"


def _budgets(args: argparse.Namespace, slo: dict[str, float]) -> dict[str, float]:
    """The latency section's budgets: the config's [slo], then the --slo summary limits that name a
    stage percentile (p95_ttft_ms is ttft_p95_ms)."""
    from sessions.latency import BadBudgetError, check_budgets, parse_budget_key
    from workbench.context import config_for

    out = dict(config_for(args).get("slo") or {})
    for key, limit in slo.items():
        try:
            parse_budget_key(key)
        except BadBudgetError:
            continue  # per-request goodput limits and ITL summaries: the SLO checks judge those
        out[key] = limit
    return check_budgets(out)


def run(args: argparse.Namespace) -> int:
    from sessions.metrics import parse_slo
    from sessions.report import slo_passed, write_report
    from workbench.cli import CliError
    from workbench.context import db_path, open_store

    slo = parse_slo(args.slo)
    budgets = _budgets(args, slo)
    fmt = _format(args)
    path = db_path(args)
    from sessions.store import default_db_path

    exists = os.path.exists(path or default_db_path())
    with open_store(args, read_only=exists) as store:
        text, report = write_report(store, args.run, fmt, slo=slo, compare_to=args.compare, budgets=budgets)
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise CliError(f"cannot write {args.out}: {e.strerror or e}") from None
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    if slo and not slo_passed(report):
        failed = [c["detail"] for c in report["slo"]["checks"] if not c["passed"]]
        print("workbench: SLO failed: " + "; ".join(failed), file=sys.stderr)
        return EXIT_SLO_FAILED
    return 0
