"""Metric definitions against hand-computed values (vllm bench serve's), SLO parsing and checks,
and the noise judgement of run comparison."""
import math
import random

import pytest

from sessions.errors import SessionsError
from sessions.metrics import RequestRecord, check_slo, compare, compute_metrics, mann_whitney_p, parse_slo

MS = 1_000_000


def rec(rid, arrival_ms, token_ms, finish="stop", prompt=10):
    times = [int(t * MS) for t in token_ms]
    return RequestRecord(arrival_ns=int(arrival_ms * MS), first_token_ns=times[0] if times else None,
                         finished_ns=times[-1] if times else None, token_times_ns=times, prompt_tokens=prompt,
                         output_tokens=len(times), request_id=rid, finish_reason=finish)


def test_definitions_match_vllm():
    a = rec("a", 0, [100, 110, 130])  # ttft 100, itl 10,20, e2el 130, tpot (130-100)/2 = 15
    b = rec("b", 50, [250, 260])  # ttft 200, itl 10, e2el 210, tpot 10
    c = rec("c", 0, [40], finish="error")  # not completed: left out of latency figures
    m = compute_metrics([a, b, c], duration_s=0.26)
    assert m["completed"] == 2 and m["failed"] == 1 and m["num_prompts"] == 3
    assert m["mean_ttft_ms"] == pytest.approx(150) and m["median_ttft_ms"] == pytest.approx(150)
    assert m["std_ttft_ms"] == pytest.approx(50)  # population std, as numpy
    assert m["p99_ttft_ms"] == pytest.approx(100 + 0.99 * 100)
    assert m["mean_tpot_ms"] == pytest.approx(12.5)
    assert m["mean_itl_ms"] == pytest.approx(40 / 3) and m["median_itl_ms"] == pytest.approx(10)
    assert m["mean_e2el_ms"] == pytest.approx(170)
    assert m["total_output_tokens"] == 5 and m["total_input_tokens"] == 20
    assert m["request_throughput"] == pytest.approx(2 / 0.26)
    assert m["output_throughput"] == pytest.approx(5 / 0.26)
    assert m["total_token_throughput"] == pytest.approx(25 / 0.26)
    assert m["max_concurrent_requests"] == 2  # c ends at 40 ms, before b arrives at 50
    assert m["request_goodput"] is None
    for name in ("ttft", "tpot", "itl", "e2el"):
        for stat in ("mean", "median", "std", "p50", "p90", "p95", "p99"):
            assert f"{stat}_{name}_ms" in m


def test_goodput_and_slo_checks():
    a = rec("a", 0, [100, 110, 130])
    b = rec("b", 0, [300, 310])
    slo = parse_slo("ttft_ms=200, tpot_ms=20,p95_itl_ms=100")
    m = compute_metrics([a, b], 1.0, slo)
    assert m["good_requests"] == 1 and m["request_goodput"] == pytest.approx(1.0)
    checks = {c.name: c for c in check_slo([a, b], m, slo)}
    assert not checks["ttft_ms"].passed and "1/2" in checks["ttft_ms"].detail
    assert checks["tpot_ms"].passed and checks["p95_itl_ms"].passed
    assert all(c.passed for c in check_slo([a, b], m, parse_slo("e2el_ms=500")))


@pytest.mark.parametrize("text,msg", [("ttft_ms", "name=milliseconds"), ("ttft_ms=abc", "not a number"),
                                      ("foo_ms=3", "unknown SLO"), ("ttft_ms=-1", "positive")])
def test_bad_slo_is_one_clear_error(text, msg):
    with pytest.raises(SessionsError, match=msg):
        parse_slo(text)


def test_noise_judgement():
    rng = random.Random(3)
    base = [rec(str(i), 0, [rng.gauss(100, 10), 200]) for i in range(40)]
    same = [rec(str(i), 0, [rng.gauss(100, 10), 200]) for i in range(40)]
    slower = [rec(str(i), 0, [rng.gauss(150, 10), 250]) for i in range(40)]
    mb = compute_metrics(base, 1.0)
    c_same = compare(mb, compute_metrics(same, 1.0), base, same)
    c_slow = compare(mb, compute_metrics(slower, 1.0), base, slower)
    assert c_same["noise"]["ttft"]["verdict"] == "within noise"
    assert c_slow["noise"]["ttft"]["verdict"] == "slower"
    d = c_slow["deltas"]["mean_ttft_ms"]
    assert d["delta"] == pytest.approx(d["other"] - d["base"]) and d["delta_pct"] > 30
    assert mann_whitney_p([1.0, 2.0], [3.0, 4.0]) is None  # too few to judge
    assert mann_whitney_p([1.0] * 5, [1.0] * 5) == pytest.approx(1.0)
    assert math.isclose(mann_whitney_p(list(range(10)), list(range(100, 110))), 0.0, abs_tol=1e-3)
