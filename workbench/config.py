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
    "serve": {
        "host": "127.0.0.1",
        "port": 8000,
        "max_queue": 64,  # requests queued or running before new ones get 429
        "max_tokens": 512,  # for chat requests that give no max_tokens
    },
    "semantic_cache": {
        "enabled": True,
        "threshold": 0.88,  # cosine similarity a hit needs; `workbench cache eval` shows the trade-off
        "ttl_s": 604800.0,  # entries older than this are not served (<= 0: never expire)
        "max_entries": 100000,  # past this, the least recently used entries are evicted
        "cache_sampled": False,  # also cache requests with temperature > 0
        "audit_rate": 0.0,  # share of hits generated anyway to record whether the answer differed
    },
    "budget": {
        "output_reserve": 512,  # tokens kept for the answer when a call does not give max_tokens
        "default_context_window": 128000,  # remote models not listed in context_windows
        # model name prefix -> context window, for models whose engine is not loaded here
        "context_windows": {"gpt-4o": 128000, "gpt-4.1": 1047576, "o3": 200000, "o4-mini": 200000,
                            "claude": 200000, "gemini": 1048576, "llama-3": 131072, "qwen2.5": 32768},
        "fallback_tokenizer": "smollm2-135m",  # counts for models whose tokenizer is not local
        "retrieval_tools": ["search", "retriev", "lookup_doc", "query_docs", "knowledge", "rag"],
        "tool_results_max_share": 0.25,  # warn when one call's tool results exceed this share of the window
        "tool_definitions_max_share": 0.10,
        "long_context_tokens": 4096,  # warn when this many tokens come before the question
        "repeat_chunk_chars": 200,  # chunk size for repeated-content hashes
        "repeat_min_chars": 16,
        "repeat_min_tokens": 16,  # wasted tokens before a repeat is flagged
        # per-category caps in tokens (0 or absent = no cap), e.g. tool_results = 2000, history = 4000
        "caps": {},
        "apply_to_chat": False,  # the app trims each chat turn to the caps before the engine sees it
    },
    "routing": {
        "k": 5,
        # best score below this: no tool fits, none are sent. Calibrated on sessions/data/routing_queries.jsonl
        # (highest threshold keeping 98% of tool queries); `workbench route eval` refits it
        "abstain_threshold": 0.2,
        # with learned examples the score adds example cosines (sessions.routing.ExampleWeights), so it
        # has its own scale; fitted on the tuning half of the MetaTool set (tests/perf/bench_routing_public.py)
        "abstain_threshold_with_examples": 0.55,
        "lexical_weight": 0.3,  # weight of the keyword-overlap half of the hybrid score
        "embedding_model": "all-MiniLM-L6-v2",
    },
    # latency budgets in milliseconds, <figure>_<p50|p95|p99|mean>_ms: figures ttft, tpot, e2el, queue,
    # prefill, decode (requests) and llm, tool, gap (trace steps), e.g. ttft_p95_ms = 500; none by default.
    # `workbench latency` and `workbench report` say which stage blows each one.
    "slo": {},
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
        if section == "slo":
            from sessions.latency import BadBudgetError, check_budgets, parse_budget_key

            try:
                for key in values:
                    parse_budget_key(key)  # per-request goodput limits (ttft_ms) belong to `report --slo`
                check_budgets(values)
            except BadBudgetError as e:
                raise ConfigError(f"{source}: [slo] {e}") from None
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
