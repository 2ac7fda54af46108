"""`workbench serve` through the official `openai` SDK, as users call it: chat (whole and streamed),
n and seed, tools, JSON mode, completions, embeddings, errors as the SDK's exception types, the API
key, and /metrics under vLLM's names. One real server process with a key, on loopback."""
import json
import socket
import urllib.request

import openai
import pytest

from test_serve import start_serve, stop_serve

pytestmark = pytest.mark.slow
KEY = "sk-test-123"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("sdk") / "serve.duckdb"
    proc, port = start_serve(db, "--api-key", KEY)
    yield port
    stop_serve(proc)
    assert proc.returncode == 0


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server}/v1", api_key=KEY, max_retries=0)


def test_chat_whole_and_streamed(client):
    msgs = [{"role": "user", "content": "Name a fruit."}]
    whole = client.chat.completions.create(model="smollm2-135m", messages=msgs, max_tokens=8, temperature=0)
    assert whole.choices[0].message.role == "assistant" and whole.usage.completion_tokens >= 1
    stream = client.chat.completions.create(model="smollm2-135m", messages=msgs, max_tokens=8, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens and not chunks[-1].choices
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")


def test_n_choices_and_seed(client):
    r = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "Say a word."}],
                                       max_tokens=6, temperature=1.0, n=3, seed=7)
    assert [c.index for c in r.choices] == [0, 1, 2]
    # choice i samples with seed + i: three samples, not one sample three times
    assert len({c.message.content for c in r.choices}) > 1
    assert 3 <= r.usage.completion_tokens <= 18 and r.usage.prompt_tokens > 3


def test_tool_call_parsed_back(client):
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    choice = {"type": "function", "function": {"name": "get_weather"}}
    r = client.chat.completions.create(model="smollm2-135m", messages=msgs, tools=[WEATHER], tool_choice=choice,
                                       max_tokens=48, temperature=0)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert isinstance(json.loads(call.function.arguments), dict)
    # streamed: the call comes as tool_call deltas, the SDK puts them together
    stream = client.chat.completions.create(model="smollm2-135m", messages=msgs, tools=[WEATHER], tool_choice=choice,
                                            max_tokens=48, temperature=0, stream=True)
    deltas = [c.choices[0] for c in stream if c.choices]
    calls = [t for d in deltas for t in (d.delta.tool_calls or [])]
    assert calls and calls[0].function.name == "get_weather" and deltas[-1].finish_reason == "tool_calls"
    # the history goes back with the call and its result
    follow = msgs + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": call.id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"}]
    r2 = client.chat.completions.create(model="smollm2-135m", messages=follow, tools=[WEATHER], max_tokens=16,
                                        temperature=0)
    assert r2.choices[0].message.content or r2.choices[0].message.tool_calls


def test_json_object_reply(client):
    r = client.chat.completions.create(
        model="smollm2-135m", max_tokens=40, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Give name and age of Ada, 36."}])
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_completions_and_models(client):
    r = client.completions.create(model="smollm2-135m", prompt="The capital of France is", max_tokens=4,
                                  temperature=0)
    assert r.choices[0].text and r.usage.prompt_tokens == 5
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "smollm2-135m" and "all-MiniLM-L6-v2" in ids


def test_embeddings(client):
    r = client.embeddings.create(model="all-MiniLM-L6-v2", input=["a cat sat on the mat", "a cat sat on the mat",
                                                                   "quarterly tax filing"])
    a, b, c = (d.embedding for d in r.data)
    assert len(a) == 384 and r.usage.prompt_tokens > 0

    def cos(x, y):
        return sum(p * q for p, q in zip(x, y))

    assert cos(a, b) == pytest.approx(1.0, abs=1e-5) and cos(a, c) < 0.5
    floats = client.embeddings.create(model="all-MiniLM-L6-v2", input="a cat sat on the mat", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(a, abs=1e-6)


def test_errors_are_the_sdk_types(client, server):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 404 and "gpt-9" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "x"}],
                                       temperature=-1)
    assert e.value.body["param"] == "temperature"
    wrong = openai.OpenAI(base_url=f"http://127.0.0.1:{server}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    with urllib.request.urlopen(f"http://127.0.0.1:{server}/health", timeout=10) as r:  # probes need no key
        assert r.status == 200


def test_metrics_speak_vllm(server, client):
    from prometheus_client.parser import text_string_to_metric_families

    client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    text = urllib.request.urlopen(f"http://127.0.0.1:{server}/metrics", timeout=10).read().decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            samples.setdefault(smp.name, []).append(smp)
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:generation_tokens_total",
                 "vllm:spec_decode_num_draft_tokens_total", "vllm:spec_decode_num_accepted_tokens_total",
                 "vllm:time_to_first_token_seconds_count", "vllm:inter_token_latency_seconds_count",
                 "vllm:e2e_request_latency_seconds_count"):
        assert samples[name][0].labels == {"model_name": "smollm2-135m", "engine": "0"}, name
    assert samples["vllm:time_to_first_token_seconds_count"][0].value >= 1
    assert samples["vllm:prefix_cache_queries_total"][0].value > 0
    # vLLM's bucket boundaries, exactly
    les = [float(x.labels["le"]) for x in samples["vllm:time_to_first_token_seconds_bucket"]]
    assert les[:4] == [0.001, 0.005, 0.01, 0.02] and les[-2:] == [2560.0, float("inf")]
    les = [float(x.labels["le"]) for x in samples["vllm:e2e_request_latency_seconds_bucket"]]
    assert les[:3] == [0.3, 0.5, 0.8] and les[-2] == 7680.0


@pytest.mark.parametrize("args,msg", [
    (["--host", "0.0.0.0"], "pass --api-key"),
    (["--api-key", " "], "the API key is empty"),
    (["--port", "70000"], "--port must be between"),
])
def test_serve_user_errors_are_one_line(wb, tmp_path, args, msg):
    r = wb("--db", str(tmp_path / "e.duckdb"), "serve", *args)
    assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_port_in_use_is_one_line(wb, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        r = wb("--db", str(tmp_path / "e.duckdb"), "serve", "--port", str(s.getsockname()[1]))
    assert r.returncode == 2 and "cannot listen on 127.0.0.1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
