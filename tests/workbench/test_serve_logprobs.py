"""Logprobs over HTTP, through the official `openai` SDK, from `workbench --backend torch serve` on the
embedded model: chat (whole and streamed) and completions, each token's logprob and alternatives in
the API's shapes, and a server whose backend cannot give them answering 400 (test_serve.py)."""
import math

import openai
import pytest

from test_serve import start_serve, stop_serve

pytestmark = pytest.mark.slow
MSGS = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    db = tmp_path_factory.mktemp("lp") / "serve.duckdb"
    proc, port = start_serve(db, "--backend", "torch")
    yield openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
    stop_serve(proc)
    assert proc.returncode == 0


def test_chat_logprobs_whole_and_streamed_agree(client):
    whole = client.chat.completions.create(model="smollm2-135m", messages=MSGS, max_tokens=8, temperature=0,
                                           logprobs=True, top_logprobs=2)
    content = whole.choices[0].logprobs.content
    assert len(content) == whole.usage.completion_tokens
    assert "".join(t.token for t in content).startswith(whole.choices[0].message.content.strip()[:3])
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 2
        assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob
        assert t.top_logprobs[0].token == t.token and t.top_logprobs[0].logprob == pytest.approx(t.logprob)
        assert bytes(t.bytes).decode(errors="replace") == t.token
    stream = client.chat.completions.create(model="smollm2-135m", messages=MSGS, max_tokens=8, temperature=0,
                                            logprobs=True, top_logprobs=2, stream=True)
    streamed = [t for c in stream if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert [t.token for t in streamed] == [t.token for t in content]
    assert [t.logprob for t in streamed] == pytest.approx([t.logprob for t in content], abs=1e-4)


def test_completion_logprobs(client):
    r = client.completions.create(model="smollm2-135m", prompt="The capital of France is", max_tokens=5,
                                  temperature=0, logprobs=3)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == r.usage.completion_tokens
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    for tok, val, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) <= 3 and max(top.values()) == pytest.approx(val)  # greedy: the likeliest
        assert sum(math.exp(v) for v in top.values()) <= 1.0 + 1e-6


def test_logprobs_errors(client):
    with pytest.raises(openai.BadRequestError, match="top_logprobs"):
        client.chat.completions.create(model="smollm2-135m", messages=MSGS, max_tokens=2, top_logprobs=2)
    with pytest.raises(openai.BadRequestError, match="top_logprobs"):
        client.chat.completions.create(model="smollm2-135m", messages=MSGS, max_tokens=2, logprobs=True,
                                       top_logprobs=50)
