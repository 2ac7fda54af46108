"""`workbench cache` as a user runs it: the real command in a subprocess, the real model."""
from __future__ import annotations

import json

import pytest

from tests.conftest import run_workbench

pytestmark = pytest.mark.slow

PAIRS = [
    {"a": "What is the capital of Australia?", "b": "Which city is Australia's capital?", "same": True, "family": "entity"},
    {"a": "What is the capital of France?", "b": "What is the capital of Germany?", "same": False, "family": "entity"},
    {"a": "Which foods contain gluten?", "b": "Which foods don't contain gluten?", "same": False, "family": "negation"},
    {"a": "Why do cats purr?", "b": "What makes cats purr?", "same": True, "family": None},
]


def test_cache_eval_reports_hit_and_false_hit_rates(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    db = str(tmp_path / "wb.duckdb")
    r = run_workbench("--db", db, "cache", "eval", str(pairs), "--json", "--threshold", "0.8")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["hit_rate"], out["false_hit_rate"]) == (1.0, 0.0)
    assert out["by_family"]["negation"]["false_hit_rate"] == 0.0
    assert out["by_family"]["negation"]["refused_by_guard"] == {"negation": 1}
    assert out["by_family"]["none"]["hit_rate"] == 1.0
    # without guards, the negated question is a false hit at the same threshold
    at = {t["threshold"]: t for t in out["by_threshold"]}[0.8]
    assert at["false_hit_rate"] == 0.0 and at["false_hit_rate_no_guards"] > 0

    r = run_workbench("--db", db, "cache", "eval", str(pairs), "--threshold", "0.8")
    assert r.returncode == 0, r.stderr
    assert "hit rate on same-meaning pairs: 100.0%" in r.stdout
    assert "false-hit rate on the others:   0.0%" in r.stdout
    assert "negation" in r.stdout


def test_cache_eval_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": "x", "b": "y", "same": true}\nnot json\n')
    r = run_workbench("--db", str(tmp_path / "wb.duckdb"), "cache", "eval", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "bad.jsonl:2: not JSON" in r.stderr
    r = run_workbench("--db", str(tmp_path / "wb.duckdb"), "cache", "eval", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "pairs file not found" in r.stderr


def test_cache_stats_and_clear_on_a_database(tmp_path):
    from engine.cache.semantic_cache import CacheEntry
    from sessions.cache_store import CacheStore
    from sessions.store import Store
    import numpy as np

    db = tmp_path / "wb.duckdb"
    with Store(db) as store:
        vec = np.ones(384, np.float32) / np.sqrt(384)
        CacheStore(store).put(CacheEntry("e1", "s", "smollm2-135m", "q", "a", vec, 1.0, 1.0, 3))
    r = run_workbench("--db", str(db), "cache", "stats", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["entries"] == 1 and st["by_model"] == [{"model": "smollm2-135m", "entries": 1, "hits": 3}]
    r = run_workbench("--db", str(db), "cache", "clear")
    assert r.returncode == 0 and "cleared 1 cached answers" in r.stdout
    r = run_workbench("--db", str(db), "cache", "stats")
    assert r.returncode == 0 and "entries 0" in r.stdout
