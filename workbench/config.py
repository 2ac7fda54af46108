"""Settings from TOML (./workbench.toml first, then the user config dir), checked against the
defaults below, then overridden by environment variables and command-line options."""
from __future__ import annotations

import copy
import os
import tomllib
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    pass


# Every setting, its default and so its type. A section added here is the only place to add one.
DEFAULTS: dict[str, dict[str, Any]] = {
    "engine": {
        "model": "smollm2-135m",
        "backend": "auto",
        "n_ctx": 8192,  # llama.cpp context window (capped by the model's own)
        "threads": 0,  # 0 = let the backend choose
    },
    "chat": {
        "system_prompt": "You are a helpful assistant.",
        "max_tokens": 512,
        "temperature": 0.7,
        "top_p": 0.95,
    },
    "database": {
        "path": "",  # empty = $WORKBENCH_DB, else the platformdirs user data dir
    },
    "ui": {
        "refresh_hz": 20.0,  # how often panels drain the event buffer
    },
    # action id -> key; see the app's BINDINGS for the ids
    "keymap": {},
}

ENV_OVERRIDES = {
    "WORKBENCH_MODEL": ("engine", "model"),
    "WORKBENCH_BACKEND": ("engine", "backend"),
}


def config_paths() -> list[Path]:
    from platformdirs import user_config_dir

    return [Path.cwd() / "workbench.toml", Path(user_config_dir("inference-workbench", appauthor=False)) / "config.toml"]


def _check(data: dict[str, Any], source: str) -> None:
    for section, values in data.items():
        if section not in DEFAULTS:
            raise ConfigError(f"{source}: unknown section [{section}]; known: {', '.join(DEFAULTS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        if section == "keymap":
            for k, v in values.items():
                if not isinstance(v, str):
                    raise ConfigError(f"{source}: keymap.{k} must be a key string like 'ctrl+n'")
            continue
        for key, value in values.items():
            if key not in DEFAULTS[section]:
                raise ConfigError(f"{source}: unknown setting {section}.{key}")
            want = type(DEFAULTS[section][key])
            ok = isinstance(value, want) or (want is float and isinstance(value, int) and not isinstance(value, bool))
            if not ok or (want is int and isinstance(value, bool)):
                raise ConfigError(f"{source}: {section}.{key} must be {want.__name__}, not {type(value).__name__}")


def load_config(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    cfg = copy.deepcopy(DEFAULTS)
    candidates = [Path(path)] if path else config_paths()
    if path and not Path(path).is_file():
        raise ConfigError(f"config file not found: {path}")
    for p in candidates:
        if p.is_file():
            try:
                data = tomllib.loads(p.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                raise ConfigError(f"{p}: not valid TOML: {e}") from None
            _check(data, str(p))
            for section, values in data.items():
                cfg[section].update(values)
            break
    for env, (section, key) in ENV_OVERRIDES.items():
        if os.environ.get(env):
            cfg[section][key] = os.environ[env]
    return cfg
