"""Latency budget and tail attribution on recorded data: bench runs on a random-weight Llama (the
torch engine) with a planted cause and a near miss, preemptions counted per request, a chat
session, timed public traces split into LLM, tool and gap time, and budgets from a TOML [slo]."""
from __future__ import annotations

import statistics
from pathlib import Path

import pytest

pytest.importorskip("torch")

from sessions.latency import (  # noqa: E402
    REQUEST_STAGES,
    BadBudgetError,
    LatencyReport,
    NoDataError,
    UnknownIdError,
    check_budgets,
    latency_for_run,
    latency_for_session,
    latency_for_trace,
    latency_report,
    parse_budget_key,
)
from engine.types import percentile  # noqa: E402
from sessions.store import Store  # noqa: E402
from sessions.tail import attribute_tail, holm, rank_sum_exact_p  # noqa: E402
from tests.sessions.latency_runs import engine_on, record_run, tiny_model  # noqa: E402

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "traces"
N = 120  # the p95 tail of 120 requests is 6 of them
LONG_AT = {9, 31, 50, 72, 95, 113}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("tiny-latency"))


@pytest.fixture(scope="module")
def runs(model_dir, tmp_path_factory):
    """One DuckDB file, closed, holding a run where six requests have 10x longer prompts and a run
    where every request has the same shape."""
    db = tmp_path_factory.mktemp("latency") / "l.duckdb"
    with engine_on(model_dir) as eng, Store(db) as store:
        planted, long_ids = record_run(eng, store, n=N, long_at=LONG_AT, seed=1)
        near, _ = record_run(eng, store, n=N, seed=2)
    return db, planted, long_ids, near


def test_planted_long_prompts_are_the_tail(runs):
    db, planted, long_ids, _ = runs
    with Store(db, read_only=True) as store:
        rep = latency_report(store, planted[:7])
    assert isinstance(rep, LatencyReport) and rep.kind == "run" and rep.ref == planted and rep.n == N
    assert len(rep.tail_ids) == 6
    # on a loaded machine a scheduling hiccup may push a short request or two into the tail: the
    # cause must still be found, and the tail's median prompt is still the long one
    assert len(set(rep.tail_ids) & long_ids) >= 4
    factors = {f.feature: f for f in rep.tail}
    p = factors["prompt_tokens"]
    assert p.significant and p.tail_value == 480 and p.rest_value == 48 and p.p_value < 0.001
    assert [f.feature for f in rep.tail if f.significant] == ["prompt_tokens"]
    assert "tail requests have 10.0x longer prompts" in rep.verdict()
    # the tail's time is mostly prefill: that is what a 10x longer prompt costs
    shares = {s.name: s.share_of_p95 for s in rep.stages}
    assert [s.name for s in rep.stages] == list(REQUEST_STAGES)
    assert sum(shares.values()) == pytest.approx(1.0)
    # what a 10x longer prompt costs: the tail's prefill is several times the rest's (which stage
    # dominates the tail's total depends on how fast this machine decodes, so it is not asserted)
    tail_prefill = [r.stages["prefill"] for r in rep.rows if r.id in long_ids and r.in_tail]
    rest_prefill = [r.stages["prefill"] for r in rep.rows if r.id not in long_ids]
    assert statistics.median(tail_prefill) > 3 * statistics.median(rest_prefill)


def test_stages_add_up_to_each_request_and_match_the_recorded_figures(runs):
    db, planted, _, _ = runs
    with Store(db, read_only=True) as store:
        rep = latency_for_run(store, planted)
        recorded = dict(store.execute("SELECT id, e2el_ms FROM requests WHERE session_id = ?", [planted]).fetchall())
        queue = dict(store.execute("SELECT id, queue_time_ms FROM requests WHERE session_id = ?", [planted]).fetchall())
    for r in rep.rows:
        assert sum(r.stages.values()) == pytest.approx(r.e2el_ms, abs=1e-6)
        assert r.e2el_ms == pytest.approx(recorded[r.id], abs=1e-6)
        assert r.stages["queue"] == pytest.approx(queue[r.id], abs=1e-6)
        assert r.features["batch_at_arrival"] == 0  # one request at a time
        assert r.features["preemptions"] == 0 and r.features["speculation"] == 0
    e2e = sorted(r.e2el_ms for r in rep.rows)
    assert rep.e2el.p50_ms == pytest.approx((e2e[59] + e2e[60]) / 2)
    assert all(r.in_tail == (r.id in rep.tail_ids) for r in rep.rows)
    assert min(r.e2el_ms for r in rep.rows if r.in_tail) >= rep.e2el.p95_ms > max(
        r.e2el_ms for r in rep.rows if not r.in_tail)


def test_near_miss_flags_nothing(runs):
    db, _, _, near = runs
    with Store(db, read_only=True) as store:
        rep = latency_for_run(store, near)
    assert len(rep.tail_ids) == 6
    assert not any(f.significant for f in rep.tail)
    assert {f.feature: f.note for f in rep.tail}["prompt_tokens"] == "the same in every request"
    assert rep.verdict().endswith("nothing sets the tail requests apart")


def test_budgets_from_a_toml_slo_table(runs, tmp_path):
    from workbench.config import ConfigError, load_config

    db, planted, _, _ = runs
    with Store(db, read_only=True) as store:
        base = latency_for_run(store, planted)
        ttft_p95 = base.stage("ttft").p95_ms
        e2el_p95 = base.e2el.p95_ms
        cfg = tmp_path / "workbench.toml"
        cfg.write_text(f"[slo]\nttft_p95_ms = {ttft_p95 * 2:.3f}\ne2el_p95_ms = {e2el_p95 / 2:.3f}\n"
                       "p99_decode_ms = 100000\ntpot_p95_ms = 100000\n")
        slo = load_config(cfg)["slo"]
        rep = latency_for_run(store, planted, slo)
        recorded_tpot = [r[0] for r in store.execute("SELECT tpot_ms FROM requests WHERE session_id = ?", [planted]).fetchall()]
    checks = {b.metric: b for b in rep.budgets}
    assert set(checks) == {"ttft_p95_ms", "e2el_p95_ms", "p99_decode_ms", "tpot_p95_ms"}
    assert checks["tpot_p95_ms"].ok and checks["tpot_p95_ms"].stage == "decode"
    assert checks["tpot_p95_ms"].value_ms == pytest.approx(percentile(recorded_tpot, 95))
    assert checks["ttft_p95_ms"].ok and checks["ttft_p95_ms"].value_ms == pytest.approx(ttft_p95)
    assert not checks["e2el_p95_ms"].ok and checks["e2el_p95_ms"].value_ms == pytest.approx(e2el_p95)
    # the e2el budget is blamed on the stage that holds most of the tail's time
    shares = {st.name: st.share_of_p95 for st in rep.stages}
    assert checks["e2el_p95_ms"].stage == max(shares, key=shares.get) and checks["p99_decode_ms"].stage == "decode"
    assert checks["p99_decode_ms"].ok
    assert "e2el_p95_ms budget" in rep.verdict() and "blown by prefill" in rep.verdict()
    assert "ttft_p95_ms budget" not in rep.verdict()
    for bad, needle in (("[slo]\nttft_ms = 5\n", "ttft_p95_ms"), ("[slo]\nitl_p95_ms = 5\n", "unknown figure"),
                        ("[slo]\nttft_p95_ms = -5\n", "positive"), ('[slo]\nttft_p95_ms = "fast"\n', "positive")):
        cfg.write_text(bad)
        with pytest.raises(ConfigError, match=needle):
            load_config(cfg)


def test_budget_names():
    assert parse_budget_key("ttft_p95_ms") == ("ttft", "p95")
    assert parse_budget_key("p99_e2el_ms") == ("e2el", "p99")
    assert parse_budget_key("queue_time_mean_ms") == ("queue", "mean")
    assert parse_budget_key("tool_p90_ms") == ("tool", "p90")
    assert check_budgets({"ttft_ms": 5, "e2el_p95_ms": 800}) == {"e2el_p95_ms": 800.0}  # goodput limits left to report
    for bad in ("ttft", "ttft_p100_ms", "foo_p95_ms", "ttft_ms_p95"):
        with pytest.raises(BadBudgetError):
            parse_budget_key(bad)


def test_preemptions_are_counted_per_request_and_read_back(model_dir, tmp_path):
    """A KV pool too small for four requests at once: the scheduler preempts, and each request's
    count reaches the requests table (migration 8) and the tail features."""
    with engine_on(model_dir, num_kv_blocks=40, block_size=4, enable_prefix_caching=False) as eng, \
            Store(tmp_path / "p.duckdb") as store:
        run_id, _ = record_run(eng, store, n=12, short=60, long=60, max_tokens=24, concurrency=4)
        total = eng.stats()["num_preemptions"]
        rows = store.execute("SELECT preemptions FROM requests WHERE session_id = ?", [run_id]).fetchall()
        version = store.schema_version()
        rep = latency_for_run(store, run_id)
    assert version >= 8 and total > 0
    assert sum(r[0] for r in rows) == total  # the warm-up ran alone, before the run: never preempted
    assert sum(r.features["preemptions"] for r in rep.rows) == total
    assert max(r.features["batch_at_arrival"] for r in rep.rows) == 3


def test_chat_session(model_dir, tmp_path):
    from engine import SamplingParams
    from sessions.recorder import Recorder

    with engine_on(model_dir) as eng:
        with Store(tmp_path / "c.duckdb") as store:
            rec = Recorder(store)
            eng.add_listener(rec.on_event)
            sid = rec.new_session("chat", model="tiny", backend="torch", title="a chat")
            for turn in range(4):
                rec.add_message(sid, "user", f"turn {turn}")
                eng.submit("", SamplingParams(max_tokens=6, temperature=0), prompt_token_ids=list(range(3, 20 + 8 * turn)),
                           tags={"session_id": sid, "assistant_message": True}).result(120)
            rec.flush()
            rec.close()
            rep = latency_report(store, sid[:5])
            again = latency_for_session(store, sid)
            idle = Recorder(store)
            empty_sid = idle.new_session("chat", title="nothing asked")
            idle.flush()
            idle.close()
            with pytest.raises(NoDataError, match="no completed requests"):
                latency_report(store, empty_sid)
    assert rep.kind == "session" and rep.title == "a chat" and rep.n == 4 and again.n == 4
    assert [r.features["prompt_tokens"] for r in rep.rows] == [17, 25, 33, 41]
    assert all(f.p_value is None and f.note.startswith("too few") for f in rep.tail)
    assert "too few tail requests (1)" in rep.verdict()
    assert rep.to_dict()["rows"][0]["stages"].keys() == {"queue", "prefill", "decode"}


def _import(store, name: str) -> str:
    from sessions.traces.importers import parse_file
    from sessions.traces.store import save_parsed

    return save_parsed(store, parse_file(TRACES / name)).trace_ids[0]


def test_trace_split_sums_to_its_duration(tmp_path):
    """OpenHands' own evaluation output: 23 LLM calls, each followed by a tool run."""
    with Store(tmp_path / "t.duckdb") as store:
        tid = _import(store, "openhands/multi_swe_bench-output.jsonl")
        rep = latency_for_trace(store, tid[:6], {"e2el_p95_ms": 1000, "tool_p95_ms": 5000})
        start, end = store.execute("SELECT start_ns, end_ns FROM traces WHERE id = ?", [tid]).fetchone()
        spans = store.execute("SELECT kind, start_ns, end_ns FROM trace_spans WHERE trace_id = ? AND end_ns IS NOT NULL",
                              [tid]).fetchall()
    assert rep.kind == "trace" and rep.unit == "step" and rep.n == 23
    assert rep.duration_ms == pytest.approx((end - start) / 1e6)
    assert sum(rep.totals_ms.values()) == pytest.approx(rep.duration_ms, abs=1e-6)
    assert sum(r.e2el_ms for r in rep.rows) == pytest.approx(rep.duration_ms, abs=1e-6)
    # the calls and tool runs of this agent never overlap: each total is the sum of its spans
    assert rep.totals_ms["llm"] == pytest.approx(sum(e - s for k, s, e in spans if k == "llm") / 1e6)
    assert rep.totals_ms["tool"] == pytest.approx(sum(e - s for k, s, e in spans if k == "tool") / 1e6)
    assert 0 < rep.totals_ms["gap"] < 0.01 * rep.duration_ms
    checks = {b.metric: b for b in rep.budgets}
    assert not checks["e2el_p95_ms"].ok and checks["e2el_p95_ms"].stage == "llm" and checks["tool_p95_ms"].ok
    assert len(rep.tail_ids) == 2 and "too few tail steps (2)" in rep.verdict()
    assert [r.features["prompt_tokens"] for r in rep.rows][:3] == [5920, 6736, 6971]


def test_trace_with_overlapping_turns_and_tools_inside_them(tmp_path):
    """Claude's agent SDK (exported by Langfuse): assistant-turn spans overlap and tool calls run
    inside them; each instant counts once, a tool run as tool time."""
    with Store(tmp_path / "t.duckdb") as store:
        tid = _import(store, "langfuse/claude-agent-2025-12-22.trace.json")
        rep = latency_report(store, tid)
    assert rep.n == 4 and sum(rep.totals_ms.values()) == pytest.approx(rep.duration_ms) == pytest.approx(7360.0)
    assert rep.totals_ms["tool"] == pytest.approx(82.0)  # two 41 ms weather calls


def test_untimed_trace_and_unknown_ids(tmp_path):
    with Store(tmp_path / "t.duckdb") as store:
        tid = _import(store, "swe-agent/sweagenttestrepo-1c2844.traj")
        with pytest.raises(NoDataError, match="no span start and end times"):
            latency_report(store, tid)
        with pytest.raises(UnknownIdError, match="no bench run, session or trace"):
            latency_report(store, "nope")
        with pytest.raises(LookupError):
            latency_for_run(store, tid)  # a trace is not a run
        with pytest.raises(ValueError):
            latency_report(store, tid, {"ttft_p95_ms": 0})


# ---- the statistics alone ----

def test_holm_matches_the_textbook_example():
    # Holm (1979)-style worked example: sorted p 0.01, 0.02, 0.03, 0.04 -> 0.04, 0.06, 0.06, 0.06
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])


def test_exact_rank_sum_p():
    from scipy.stats import mannwhitneyu

    a, b = [1.2, 3.4, 0.5, 7.7, 2.2], [0.1, 9.9, 4.4, 5.5, 6.6, 8.8, 0.3]
    assert rank_sum_exact_p(a, b) == pytest.approx(mannwhitneyu(a, b, method="exact").pvalue)
    # three of sixty apart, with every other value tied: 2 of the C(60, 3) = 34220 ways are as extreme
    assert rank_sum_exact_p([400.0] * 3, [40.0] * 57) == pytest.approx(1 / 34220)


def test_attribution_planted_binary_cause_and_overlap():
    tail = [True] * 4 + [False] * 56
    spec = [1.0] * 4 + [0.0] * 50 + [1.0] * 6  # speculation on in every tail request, in 6 of 56 others
    prompt = [41.0, 44.0, 39.0, 42.0] + [38.0 + (i % 9) for i in range(56)]  # overlapping: no cause
    out = {f.feature: f for f in attribute_tail(tail, {"speculation": spec, "prompt_tokens": prompt}, {"speculation"})}
    assert out["speculation"].test == "fisher" and out["speculation"].significant
    assert out["speculation"].tail_value == 1.0 and out["speculation"].rest_value == pytest.approx(6 / 56)
    assert out["prompt_tokens"].test == "mann-whitney" and not out["prompt_tokens"].significant
    assert out["speculation"].p_value == pytest.approx(2 * out["speculation"].p_raw)  # Holm over two features


def test_batch_at_arrival_counts_the_others_in_flight():
    from sessions.latency import batch_at_arrival

    # the third never finished: it counts for itself, not for those after it
    assert batch_at_arrival([0, 1, 2, 10], [5, 3, None, 11]) == [0, 1, 2, 0]
    assert batch_at_arrival([0, 5], [5, 6]) == [0, 0]  # one finishing as the next arrives is not in flight
