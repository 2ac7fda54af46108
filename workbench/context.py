"""What every command needs: the config, the store and the engine, built from global options."""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from typing import Any, Callable


def config_for(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    cached = getattr(args, "_config", None)
    if cached is None:
        from workbench.config import load_config

        cached = load_config(getattr(args, "config", None))
        args._config = cached
    return cached


def db_path(args: argparse.Namespace) -> str | None:
    if getattr(args, "db", None):
        return args.db
    return config_for(args)["database"]["path"] or None


def open_store(args: argparse.Namespace, *, read_only: bool = False):
    from sessions.store import Store

    return Store(db_path(args), read_only=read_only)


def model_name(args: argparse.Namespace) -> str:
    return getattr(args, "model", None) or config_for(args)["engine"]["model"]


def backend_name(args: argparse.Namespace) -> str:
    return getattr(args, "backend", None) or config_for(args)["engine"]["backend"]


def engine_for(args: argparse.Namespace, **overrides: Any):
    """The engine the global options and the config name; `overrides` (model, backend, Engine.load
    options) win over both."""
    from workbench.services import load_engine

    overrides.setdefault("model", model_name(args))
    overrides.setdefault("backend", backend_name(args))
    return load_engine(config_for(args), **overrides)


def _json_default(o: Any) -> Any:
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    return str(o)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, default=_json_default, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def emit(args: argparse.Namespace, data: Any, show: Callable[[Any], None], *, empty: str | None = None) -> int:
    """A command's result: JSON with --json, else `show(data)` for people, or `empty` when there is
    nothing to list. Returns the exit status (0)."""
    if getattr(args, "json", False):
        print_json(data)
    elif not data and empty is not None:
        print(empty)
    else:
        show(data)
    return 0
