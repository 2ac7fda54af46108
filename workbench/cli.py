"""The `workbench` command: global options, one module per subcommand, and one place where
user errors become a single line on stderr and a non-zero exit."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# Each module defines `register(subparsers, common)`; it must import nothing heavy at module
# level (torch, textual, duckdb ...) so that `workbench chat` starts fast.
COMMAND_MODULES = [
    "workbench.commands.chat",
    "workbench.commands.sessions_cmd",
    "workbench.commands.traces_cmd",
    "workbench.commands.bench_cmd",
    "workbench.commands.report_cmd",
    "workbench.commands.latency_cmd",
    "workbench.commands.serve_cmd",
    "workbench.commands.cache_cmd",
    "workbench.commands.budget_cmd",
    "workbench.commands.route_cmd",
    "workbench.commands.spec_cmd",
    "workbench.commands.export_cmd",
]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A usage problem found after parsing (e.g. an empty prompt on stdin)."""


def _common_options(for_subcommand: bool) -> argparse.ArgumentParser:
    from engine.types import BACKENDS

    # Global options are accepted before or after the subcommand; SUPPRESS keeps a
    # subcommand's unset option from overwriting the value given before it.
    d = argparse.SUPPRESS if for_subcommand else None
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("global options")
    g.add_argument("--db", metavar="PATH", default=d, help="DuckDB file (default: $WORKBENCH_DB, else the user data dir)")
    g.add_argument("--model", metavar="NAME_OR_PATH", default=d, help="smollm2-135m (embedded), a GGUF file, an HF folder or hub id")
    g.add_argument("--backend", metavar="NAME", default=d, choices=BACKENDS, help=", ".join(BACKENDS))
    g.add_argument("--config", metavar="FILE", default=d, help="TOML config file (default: ./workbench.toml, then the user config dir)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="A terminal workbench for running LLMs and agents fast: live TTFT/ITL, sessions in DuckDB, trace analysis.",
        parents=[_common_options(False)],
    )
    parser.set_defaults(func=_run_app)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    common = _common_options(True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub, common)
    return parser


def _run_app(args: argparse.Namespace) -> int:
    from workbench.app import run_app

    return run_app(args)


def _user_error_types() -> tuple[type[BaseException], ...]:
    from engine.types import EngineError
    from sessions.errors import SessionsError
    from workbench.config import ConfigError

    return (EngineError, SessionsError, ConfigError, CliError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`workbench sessions | head`); not an error worth a trace
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except Exception as e:
        if isinstance(e, _user_error_types()):
            print(f"workbench: error: {e}", file=sys.stderr)
            return EXIT_USER_ERROR
        if os.environ.get("WORKBENCH_DEBUG"):
            raise
        print(f"workbench: internal error: {type(e).__name__}: {e} (set WORKBENCH_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
