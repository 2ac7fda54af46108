"""N+1, redundant and loop detectors over the fixtures (real shapes and near-misses) and over
small hand-built traces that pin down thresholds, estimates and fingerprints."""
from pathlib import Path

import pytest

from sessions.traces.importers import parse_file
from sessions.traces.model import Span, ToolCall, Trace
from sessions.traces.nplus1 import (
    DetectorSettings,
    LoopDetector,
    NPlusOneSettings,
    canonical,
    detect,
    parameterize,
    parameterize_command,
    tool_calls,
)

FX = Path(__file__).parent / "fixtures" / "traces"


def findings(name, i=0, settings=None):
    return detect(parse_file(FX / name).traces[i], settings)


def summary(fs):
    return sorted((f.kind, f.tool, f.count) for f in fs)


@pytest.mark.parametrize("name, i, expected", [
    ("openai_orders_nplus1.json", 0, [("n_plus_one", "get_order_details", 4)]),
    ("openai_log.jsonl", 0, [("n_plus_one", "get_weather", 3)]),
    ("anthropic_files.json", 0, [("n_plus_one", "read_file", 3)]),
    ("otlp_genai.json", 0, [("n_plus_one", "get_order", 5)]),
    ("langfuse_trace.json", 0, [("n_plus_one", "search_docs", 3)]),
    ("langsmith_runs.jsonl", 0, [("n_plus_one", "get_ticket_owner", 4), ("redundant", "get_config", 2)]),
    ("swe_agent.traj", 0, [("n_plus_one", "cat", 3)]),
    ("openhands_events.json", 0, [("loop", "execute_bash → execute_bash", 3)]),
    ("tau_bench_results.json", 0, [("n_plus_one", "get_order_details", 4)]),
])
def test_real_shapes_are_found(name, i, expected):
    assert summary(findings(name, i)) == expected


@pytest.mark.parametrize("name, i", [
    ("openai_near_miss.json", 0),  # two fetches only; same tool, other argument keys; read/edit interleaved
    ("otlp_genai.json", 1),  # four cache lookups, 8 ms in all: under min_total_ms
    ("tau_bench_results.json", 1),  # two order lookups: under min_repeats
])
def test_near_misses_are_not_flagged(name, i):
    assert findings(name, i) == []


def test_tests_rerun_after_edit_is_not_redundant():
    # SWE-agent runs pytest twice with different output: it observed new state
    fs = findings("swe_agent.traj")
    assert not any(f.kind == "redundant" for f in fs)


def test_timed_estimate_is_explained():
    f = findings("otlp_genai.json")[0]
    assert f.total_ms == pytest.approx(250.0)
    # 250 - slowest 60, plus the 4 LLM turns of 150 ms that only asked for the next order
    assert f.saved_ms_estimate == pytest.approx(790.0)
    assert "minus slowest 60.0 ms" in f.estimate_method and "4 LLM turn" in f.estimate_method
    assert f.dispatch == "sequential" and f.timings == "full"
    assert len(f.span_ids) == 5


def test_fan_out_estimate_uses_wall_time():
    f = findings("langfuse_trace.json")[0]
    assert f.dispatch == "fan_out"
    assert f.total_ms == pytest.approx(690 + 835 + 580)
    assert f.saved_ms_estimate == pytest.approx(840 - 835)


def test_untimed_traces_are_judged_on_count_alone():
    f = findings("openai_orders_nplus1.json")[0]
    assert f.total_ms is None and f.saved_ms_estimate is None and f.timings == "none"
    assert "count alone" in f.estimate_method
    strict = DetectorSettings(nplus1=NPlusOneSettings(min_repeats=5))
    assert findings("openai_orders_nplus1.json", 0, strict) == []


def test_min_total_ms_threshold():
    lax = DetectorSettings(nplus1=NPlusOneSettings(min_total_ms=5))
    assert summary(findings("otlp_genai.json", 1, lax)) == [("n_plus_one", "cache_get", 4)]
    strict = DetectorSettings(nplus1=NPlusOneSettings(min_total_ms=300))
    assert findings("otlp_genai.json", 0, strict) == []


def test_fingerprint_groups_across_traces_and_formats():
    a = findings("openai_orders_nplus1.json")[0]
    b = findings("tau_bench_results.json")[0]
    c = findings("otlp_genai.json")[0]
    assert a.fingerprint == b.fingerprint  # same tool, same argument shape
    assert a.trace_id != b.trace_id
    assert c.fingerprint != a.fingerprint


def test_parameterize():
    def p(a):
        return parameterize(a, canonical(a), ("command",))
    assert p({"order_id": "A-1"}) == p({"order_id": "B-22"}) == '{"order_id":?}'
    assert p({"ids": [1, 2, 3]}) == p({"ids": [4]})
    assert p({"query": "x"}) != p({"query": "x", "limit": 5})
    assert p({"command": "cat src/a.py"}) == p({"command": "cat docs/b.md"}) == "{command=cat ?}"
    assert p({"command": "ls -F"}) != p({"command": "cat a.py"})
    assert parameterize_command('grep -n "foo bar" src/x.py 12') == "grep -n ?"


def _trace(calls, timed=True):
    spans = [Span("root", "agent", "agent")]
    t = 0
    for n, (tool, args, result) in enumerate(calls, 1):
        s = Span(f"t{n}", "tool", tool, "root", n, tool_call=ToolCall(None, tool, args, result))
        if timed:
            s.start_ns, s.end_ns = t, t + 30_000_000
            t += 40_000_000
        spans.append(s)
    return Trace("tid", "test", "t", spans)


def test_another_tool_between_breaks_the_run():
    calls = [("get", {"id": 1}, "a"), ("get", {"id": 2}, "b"), ("log", {"m": "x"}, "ok"), ("get", {"id": 3}, "c")]
    assert detect(_trace(calls)) == []


def test_redundant_needs_same_result():
    same = [("get", {"id": 1}, "a"), ("x", {}, "1"), ("get", {"id": 1}, "a")]
    fs = detect(_trace(same))
    assert summary(fs) == [("redundant", "get", 2)]
    assert fs[0].saved_ms_estimate == pytest.approx(30.0)
    changed = [("get", {"id": 1}, "a"), ("x", {}, "1"), ("get", {"id": 1}, "b")]
    assert detect(_trace(changed)) == []


def test_loop_needs_three_iterations_and_a_real_cycle():
    cycle = [("search", {"q": "a"}, "r"), ("open", {"u": 1}, "p")]
    assert summary(detect(_trace(cycle * 3))) == [("loop", "search → open", 3)]
    twice = detect(_trace(cycle * 2))
    assert not any(f.kind == "loop" for f in twice)  # two rounds are redundant calls, not a loop
    assert summary(twice) == [("redundant", "open", 2), ("redundant", "search", 2)]
    # a period-2 detector must not report ABAB... as a period-4 loop too
    fs = LoopDetector().detect(_trace(cycle * 4), tool_calls(_trace(cycle * 4), ()))
    assert [(f.count, len(f.span_ids)) for f in fs] == [(4, 8)]
