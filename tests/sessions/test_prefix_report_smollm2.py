"""The prefix-cache inspector end to end: SmolLM2 on the torch engine, a timestamp early vs late in
the system prompt, recorded in a real DuckDB file and shown by `workbench sessions show`."""
from __future__ import annotations

import pytest

pytest.importorskip("torch")

from engine import Engine, SamplingParams  # noqa: E402
from sessions import Recorder, Store, get_session  # noqa: E402

pytestmark = pytest.mark.slow
RULES = "You are a careful assistant. Answer briefly and cite the log line you used. " * 6


def system(stamp: str, early: bool) -> str:
    clock = f"Current time: 2026-11-27 {stamp}."
    return f"{clock} {RULES}" if early else f"{RULES} {clock}"


def test_timestamp_early_vs_late_is_explained_and_recorded(db_path, wb):
    store = Store(db_path)
    rec = Recorder(store)
    params = SamplingParams(max_tokens=2, temperature=0)
    with Engine.load("smollm2-135m", backend="torch", measure_bandwidth=False) as eng:
        eng.add_listener(rec.on_event)
        sid = rec.new_session("chat", model="smollm2-135m", backend="torch")
        results = {}
        for early in (True, False):
            for stamp in ("09:14", "09:15"):
                msgs = [{"role": "system", "content": system(stamp, early)}, {"role": "user", "content": "Status?"}]
                results[early, stamp] = eng.submit(msgs, params, tags={"session_id": sid}).result(300)
        rec.flush()
        eng.remove_listener(rec.on_event)
    rec.close()
    early = results[True, "09:15"].metrics.prefix_report
    late = results[False, "09:15"].metrics.prefix_report
    for rep in (early, late):  # the block holding the changed minute is the first miss
        assert rep["cause"] == "differs" and rep["candidate"]["request_id"]
        diff = rep["candidate"]["diff_token"]
        assert rep["blocks_hit"] == rep["first_miss_block"] == diff // rep["block_size"]
        assert rep["first_miss_token"] == rep["first_miss_block"] * rep["block_size"]
        assert "09:14" in rep["candidate"]["cached_text"] and "09:15" in rep["candidate"]["now_text"]
    # early: the clock sits right after the template's header, so next to nothing is reused;
    # late: every block of the rules before it hits
    assert early["blocks_hit"] <= 2 and late["blocks_hit"] >= 5
    assert early["blocks_queried"] == late["blocks_queried"] > late["blocks_hit"]
    assert results[False, "09:15"].metrics.cached_prompt_tokens == late["blocks_hit"] * late["block_size"]
    s = get_session(store, sid)
    stored = {r["id"]: r["prefix_report"] for r in s["requests"]}
    assert stored[results[False, "09:15"].request_id] == late
    store.close()
    out = wb("--db", db_path, "sessions", "show", sid)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith(results[False, "09:15"].request_id) and "prefix cache" in x)
    assert f"{late['blocks_hit']}/{late['blocks_queried']} blocks hit; first miss at token {late['first_miss_token']}" in line
    assert "09:14" in line and "09:15" in line
