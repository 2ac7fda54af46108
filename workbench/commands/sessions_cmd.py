"""`workbench sessions`: list recorded sessions, or show one with its messages and timings."""
from __future__ import annotations

import argparse


def register(sub, common) -> None:
    p = sub.add_parser("sessions", parents=[common], help="list sessions, or show one")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=200)
    p.set_defaults(func=list_cmd)
    s = p.add_subparsers(title="actions", metavar="ACTION")
    show = s.add_parser("show", parents=[common], help="one session: messages, requests, TTFT/ITL")
    show.add_argument("id", help="session id (a unique prefix is enough)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_cmd)


def list_cmd(args: argparse.Namespace) -> int:
    from sessions.queries import list_sessions
    from workbench.context import emit, open_store

    with open_store(args, read_only=_exists(args)) as store:
        rows = list_sessions(store, limit=args.limit)
    return emit(args, rows, _print_sessions, empty="no sessions yet: run `workbench chat --prompt ...` or `workbench`")


def _print_sessions(rows: list[dict]) -> None:
    from workbench.tables import print_table

    print_table(
        ["id", "created", "kind", "model", "requests", "p50 ttft ms", "p95 ttft ms", "tok/s", "title"],
        [[r["id"], r["created_at"], r["kind"], r["model"], r["requests"], r["p50_ttft_ms"], r["p95_ttft_ms"],
          r["output_tokens_per_s"], (r["title"] or "")[:40]] for r in rows],
        right={4, 5, 6, 7},
    )


def show_cmd(args: argparse.Namespace) -> int:
    from sessions.queries import get_session, session_summary
    from workbench.context import emit, open_store

    with open_store(args, read_only=_exists(args)) as store:
        session = get_session(store, args.id)
    session["summary"] = session_summary(session)
    return emit(args, session, _print_session)


def _print_session(session: dict) -> None:
    from workbench.tables import print_table

    s = session["summary"]
    print(f"session {session['id']}  {session['kind']}  {session['model']} ({session['backend']})  {session['created_at']:%Y-%m-%d %H:%M:%S}")
    print(f"requests {s['requests']} · p50 ttft {_f(s['p50_ttft_ms'])} ms · p95 ttft {_f(s['p95_ttft_ms'])} ms · {_f(s['output_tokens_per_s'])} tok/s")
    print()
    for m in session["messages"]:
        cached = f" (cached, similarity {m['cache_similarity']:.3f})" if m.get("cache_entry_id") else ""
        print(f"[{m['role']}]{cached} {m['content']}")
    if session["requests"]:
        print()
        print_table(
            ["request", "status", "prompt", "cached", "output", "ttft ms", "tpot ms", "e2el ms"],
            [[r["id"], r["status"], r["prompt_tokens"], r["cached_prompt_tokens"], r["output_tokens"],
              r["ttft_ms"], r["tpot_ms"], r["e2el_ms"]] for r in session["requests"]],
            right={2, 3, 4, 5, 6, 7},
        )
        reports = [(r["id"], r["prefix_report"]) for r in session["requests"] if r.get("prefix_report")]
        if reports:
            from engine.torch.prefix_inspector import describe

            print()
            for rid, rep in reports:
                print(f"{rid}  {describe(rep)}")


def _exists(args) -> bool:
    # read-only when the file exists lets `sessions` run beside a writer only if DuckDB allows;
    # a missing file is created (empty) so that a first `workbench sessions` is not an error
    from workbench.context import db_path
    from sessions.store import default_db_path
    from pathlib import Path

    p = Path(db_path(args) or default_db_path())
    return p.exists()


def _f(x) -> str:
    return "-" if x is None else f"{x:.1f}"
