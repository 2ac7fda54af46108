"""The detectors beyond N+1, each on a hand-written OTLP fixture it must flag and near misses it must not
(fixtures/detectors): retries, write amplification and partial write failure, held connections, cold starts."""
from pathlib import Path

import pytest

from sessions.traces.findings import KINDS, FindingSettings, detect
from sessions.traces.importers import parse_file

FX = Path(__file__).parent / "fixtures" / "detectors"


def found(name):
    return [[(f.kind, f.tool, f.count) for f in detect(t)] for t in parse_file(FX / name).traces]


def test_retries_are_reported_as_retries_not_as_n_plus_one():
    [fs] = found("retries.json")
    assert fs == [("retry", "get_weather", 3)]
    f = detect(parse_file(FX / "retries.json").traces[0])[0]
    assert f.saved_ms_estimate == pytest.approx(800.0)  # the two failed attempts
    assert "2 failed" in f.detail and "the last succeeded" in f.detail


def test_retry_near_misses():
    same_twice, three_cities = found("retries_near_miss.json")
    assert same_twice == [("redundant", "get_weather", 2)]  # both succeeded: nothing was retried
    assert three_cities == [("n_plus_one", "get_forecast", 3)]  # different arguments: not one call again


def test_write_amplification_and_partial_failure():
    [fs] = found("write_amplification.json")
    assert fs == [("write_amplification", "place_order", 4), ("partial_write_failure", "place_order", 4)]
    amp, partial = detect(parse_file(FX / "write_amplification.json").traces[0])
    assert "4 stores: http:search.internal, kafka:order-events, postgresql:shop, redis" in amp.detail
    assert "1 of 4 writes failed (http:search.internal)" in partial.detail and "reported success" in partial.detail
    assert amp.fingerprint != partial.fingerprint


def test_write_amplification_near_misses():
    # one store written five times; reads from three stores; two stores (under the threshold), a
    # failed action that said so, and the LLM call's own POST to its API
    assert found("write_amplification_near_miss.json") == [[], [], []]


def test_held_connection():
    tx_span, begin_commit = found("held_connection.json")
    assert tx_span == [("held_connection", "db.transaction", 1)]
    assert begin_commit == [("held_connection", "BEGIN ... COMMIT", 1)]
    f = detect(parse_file(FX / "held_connection.json").traces[1])[0]
    assert f.total_ms == pytest.approx(1848.0) and f.saved_ms_estimate == pytest.approx(1800.0)


def test_held_connection_near_misses():
    # the transaction committed before the call (the call's own HTTP POST is inside it, not around
    # it); a transaction across a call, held 60 ms, under min_held_ms
    assert found("held_connection_near_miss.json") == [[], []]
    lax = FindingSettings()
    lax.held_connection.min_held_ms = 10
    t = parse_file(FX / "held_connection_near_miss.json").traces[1]
    assert [f.kind for f in detect(t, lax)] == ["held_connection"]


def test_cold_start_is_visible_per_trace():
    [fs] = found("cold_start.json")
    assert fs == [("cold_start", "model.load + llm gpt-4o", 2)]
    f = detect(parse_file(FX / "cold_start.json").traces[0])[0]
    assert f.saved_ms_estimate == pytest.approx(3000 + 4000 - 850)
    assert "first llm gpt-4o call 4000.0 ms vs 850.0 ms median" in f.detail


def test_cold_start_near_miss():
    assert found("cold_start_near_miss.json") == [[]]  # a 20 ms warm-up, a first call like the rest


def test_every_kind_is_known_and_fingerprints_are_stable():
    seen = set()
    for p in sorted(FX.glob("*.json")):
        for t in parse_file(p).traces:
            a, b = detect(t), detect(t)
            assert [f.fingerprint for f in a] == [f.fingerprint for f in b]
            seen |= {f.kind for f in a}
    assert seen <= set(KINDS)
    assert {"retry", "write_amplification", "partial_write_failure", "held_connection", "cold_start"} <= seen
