"""The Engine facade over the llama.cpp backend, on the real embedded model."""
import threading
import time

import pytest

from engine import Engine, EngineError, RequestFinished, SamplingParams, TokenEvent, resolve_model

GREEDY = SamplingParams(max_tokens=24, temperature=0)


def test_generate_greedy_is_deterministic_and_measured(embedded_engine):
    a, b = embedded_engine.generate(["What is the capital of France?"] * 2, GREEDY)
    assert a.text and a.text == b.text
    assert a.token_ids == b.token_ids
    m = a.metrics
    assert m.output_tokens == len(a.token_ids) > 0
    assert m.prompt_tokens > 10
    assert m.ttft_s is not None and 0 < m.ttft_s <= m.e2e_s
    assert len(m.itl_s) == m.output_tokens - 1
    assert all(x >= 0 for x in m.itl_s)
    d = m.to_dict()
    assert d["tpot_ms"] is not None and d["tpot_ms"] > 0
    assert a.finish_reason in ("stop", "length")


def test_cold_start_stages_in_stats(embedded_engine):
    embedded_engine.generate(["Hi"], SamplingParams(max_tokens=1, temperature=0))
    cold = embedded_engine.stats()["cold_start_ms"]
    assert set(cold) == {"load", "first_token"} and cold["load"] > 0 and cold["first_token"] > 0


def test_second_identical_prompt_reuses_prefix(embedded_engine):
    p = [{"role": "system", "content": "You answer in one short sentence. " * 10}, {"role": "user", "content": "Name a color."}]
    first, = embedded_engine.generate([p], GREEDY)
    second, = embedded_engine.generate([p], GREEDY)
    assert second.metrics.cached_prompt_tokens >= second.metrics.prompt_tokens - 1
    assert second.text == first.text


def test_stream_events_carry_engine_times_in_order(embedded_engine):
    s = embedded_engine.stream("Count from one to ten.", SamplingParams(max_tokens=16, temperature=0))
    events = list(s)
    res = s.result
    times = [e.t_ns for e in events if e.token_ids]
    assert times == sorted(times)
    assert times[0] == res.metrics.first_token_ns
    assert "".join(e.text for e in events) == res.text
    assert [i for e in events for i in e.token_ids] == res.token_ids


def test_max_tokens_and_sampling_params(embedded_engine):
    r, = embedded_engine.generate(["Write a long story about a dragon."], SamplingParams(max_tokens=5, temperature=0.8, seed=7))
    assert r.metrics.output_tokens == 5 and r.finish_reason == "length"
    # same seed, same sample (from the same KV state: llama.cpp's logits differ in the last bits
    # between a batched prefill and a one-token re-evaluation of a fully cached prompt)
    embedded_engine.generate(["Hello"], SamplingParams(max_tokens=1, temperature=0))
    r2, = embedded_engine.generate(["Write a long story about a dragon."], SamplingParams(max_tokens=5, temperature=0.8, seed=7))
    assert r2.token_ids == r.token_ids


def test_stop_string_cuts_text_and_is_not_streamed(embedded_engine):
    full, = embedded_engine.generate(["Count from 1 to 20, separated by commas."], SamplingParams(max_tokens=60, temperature=0))
    assert "5" in full.text
    stopped = embedded_engine.stream("Count from 1 to 20, separated by commas.", SamplingParams(max_tokens=60, temperature=0, stop=["5"]))
    streamed = "".join(e.text for e in stopped)
    res = stopped.result
    assert res.finish_reason == "stop"
    assert "5" not in res.text and full.text.startswith(res.text)
    assert streamed == res.text


def test_cancel_keeps_tokens_and_marks_cancelled(embedded_engine):
    h = embedded_engine.submit("Write a very long essay about the sea.", SamplingParams(max_tokens=400, temperature=0))
    got = 0
    for ev in h:
        got += len(ev.token_ids)
        if got >= 5:
            h.cancel()
    r = h.result(timeout=30)
    assert r.finish_reason == "cancelled"
    assert 5 <= r.metrics.output_tokens < 400
    assert len(r.token_ids) == r.metrics.output_tokens and r.text


def test_requests_queue_and_all_finish(embedded_engine):
    prompts = [f"Say the number {i}." for i in range(4)]
    handles = [embedded_engine.submit(p, SamplingParams(max_tokens=8, temperature=0)) for p in prompts]
    results = [h.result(timeout=120) for h in handles]
    assert all(r.metrics.output_tokens > 0 for r in results)
    # one at a time on llama.cpp: the later ones waited in the queue
    assert results[-1].metrics.queue_time_s >= results[0].metrics.queue_time_s


def test_listener_sees_every_token_once(embedded_engine):
    seen = []
    embedded_engine.add_listener(seen.append)
    try:
        r, = embedded_engine.generate(["Hi"], SamplingParams(max_tokens=6, temperature=0))
    finally:
        embedded_engine.remove_listener(seen.append)
    toks = [t for e in seen if isinstance(e, TokenEvent) and e.request_id == r.request_id for t in e.token_ids]
    assert toks == r.token_ids
    assert any(isinstance(e, RequestFinished) and e.request_id == r.request_id for e in seen)


def test_too_long_prompt_fails_alone():
    eng = Engine.load("smollm2-135m", backend="llamacpp", n_ctx=256)
    try:
        ok = eng.submit("Hello", SamplingParams(max_tokens=4, temperature=0))
        bad = eng.submit("word " * 400, SamplingParams(max_tokens=4, temperature=0))
        assert bad.result(60).finish_reason == "error"
        assert "context window" in bad.result().error
        assert ok.result(60).finish_reason in ("stop", "length")
    finally:
        eng.close()


@pytest.mark.parametrize("prompt", ["", "   ", []])
def test_empty_prompt_is_an_error(embedded_engine, prompt):
    with pytest.raises(EngineError):
        embedded_engine.submit(prompt)


def test_model_resolution_errors(tmp_path):
    with pytest.raises(EngineError, match="does not exist"):
        resolve_model(str(tmp_path / "nope.gguf"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(EngineError, match="GGUF"):
        resolve_model(str(bad))
    with pytest.raises(EngineError, match="unknown model"):
        resolve_model("no-such-model")
    (tmp_path / "folder").mkdir()
    with pytest.raises(EngineError, match="not a model folder"):
        resolve_model(str(tmp_path / "folder"))
    assert resolve_model("smollm2-135m").kind == "gguf"


def test_bound_method_listener_can_be_removed(embedded_engine):
    class Counter:
        n = 0

        def on_event(self, ev):
            self.n += 1

    c = Counter()
    embedded_engine.add_listener(c.on_event)
    embedded_engine.remove_listener(c.on_event)
    embedded_engine.generate(["Hi"], SamplingParams(max_tokens=2, temperature=0))
    assert c.n == 0
