"""`workbench export otlp ID --out F.json`: a session, bench run or imported trace as OTLP JSON with
the OpenTelemetry GenAI attribute names (Phoenix, Jaeger and Langfuse read it; so does `import`)."""
from __future__ import annotations

import argparse
import json
import os
import sys


def register(sub, common) -> None:
    p = sub.add_parser("export", parents=[common], help="export a session, bench run or trace (otlp)",
                       description="Export stored data in an ecosystem format.")
    p.add_argument("format", choices=["otlp"], help="otlp: OTLP JSON traces (GenAI semantic conventions)")
    p.add_argument("id", metavar="SESSION|RUN|TRACE", help="a session, bench run or trace id (a unique prefix is enough)")
    p.add_argument("--out", metavar="FILE", default=None, help="write here (default: stdout)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sessions.otlp_export import export_document
    from workbench.cli import CliError
    from workbench.context import db_path, open_store
    from sessions.store import default_db_path

    path = db_path(args) or str(default_db_path())
    if not os.path.exists(path):
        raise CliError(f"no database at {path}: nothing to export")
    with open_store(args, read_only=True) as store:
        kind, full, doc = export_document(store, args.id)
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    if args.out is None:
        sys.stdout.write(text + "\n")
        return 0
    try:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    except OSError as e:
        raise CliError(f"cannot write {args.out}: {e.strerror or e}") from None
    n = sum(len(ss["spans"]) for rs in doc["resourceSpans"] for ss in rs["scopeSpans"])
    print(f"workbench: {kind} {full}: {n} spans written to {args.out}", file=sys.stderr)
    return 0
