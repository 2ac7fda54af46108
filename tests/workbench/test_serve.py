"""`workbench serve` as a real process (uvicorn on a free loopback port) with the embedded model: the
OpenAI routes (streaming and not), 4xx errors with JSON bodies, 429 with Retry-After under
overload, body limits, keep-alive, a client that leaves mid-stream, requests recorded."""
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def start_serve(db: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "--db", str(db), "serve", "--port", "0", *extra],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    line = proc.stderr.readline()
    if "listening on" not in line:
        proc.kill()
        raise AssertionError(f"serve did not start: {line}{proc.stderr.read()[-2000:]}")
    port = int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    return proc, port


def stop_serve(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def call(port: int, method: str, path: str, body=None, raw: bytes | None = None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    c.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    return r.status, r.getheader("Content-Type"), text, {k.lower(): v for k, v in r.getheaders()}


def sse_events(text: str) -> list:
    out = []
    for line in text.splitlines():
        if line.startswith("data: "):
            payload = line[6:]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("serve") / "serve.duckdb"
    proc, port = start_serve(db, "--max-queue", "2")
    yield port, db, proc
    if proc.poll() is None:
        stop_serve(proc)


CHAT = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 6, "temperature": 0}


def test_models(server):
    port, _, _ = server
    status, ctype, text, _ = call(port, "GET", "/v1/models")
    assert status == 200 and ctype == "application/json"
    assert json.loads(text)["data"][0]["id"] == "smollm2-135m"


def test_chat_whole_and_streamed_agree(server):
    port, _, _ = server
    status, _, text, _ = call(port, "POST", "/v1/chat/completions", {**CHAT, "model": "smollm2-135m"})
    assert status == 200
    whole = json.loads(text)
    assert whole["object"] == "chat.completion" and whole["id"].startswith("chatcmpl-")
    assert whole["usage"]["completion_tokens"] >= 1 and whole["usage"]["prompt_tokens"] > 3
    status, ctype, text, _ = call(port, "POST", "/v1/chat/completions",
                                  {**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert status == 200 and ctype.startswith("text/event-stream")
    events = sse_events(text)
    assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] >= 1
    chunks = [e for e in events[:-2] if e["choices"]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert streamed == whole["choices"][0]["message"]["content"]  # greedy: the same reply


def test_completions(server):
    port, _, _ = server
    status, _, text, _ = call(port, "POST", "/v1/completions", {"prompt": "The sky is", "max_tokens": 4, "temperature": 0})
    body = json.loads(text)
    assert status == 200 and body["object"] == "text_completion"
    assert body["usage"]["prompt_tokens"] == 3  # the raw text, no chat template around it
    status, _, text, _ = call(port, "POST", "/v1/completions", {"prompt": "The sky is", "max_tokens": 4, "stream": True})
    events = sse_events(text)
    assert status == 200 and events[-1] == "[DONE]" and all(e["object"] == "text_completion" for e in events[:-1])


@pytest.mark.parametrize("path,body,raw,status,param", [
    ("/v1/chat/completions", None, b"{not json", 400, None),
    ("/v1/chat/completions", {"messages": "hi"}, None, 400, "messages"),
    ("/v1/chat/completions", {"messages": [{"content": "x"}]}, None, 400, "messages"),
    ("/v1/chat/completions", {**CHAT, "max_tokens": 0}, None, 400, "max_tokens"),
    ("/v1/chat/completions", {**CHAT, "temperature": "hot"}, None, 400, "temperature"),
    ("/v1/chat/completions", {**CHAT, "n": 99}, None, 400, "n"),
    ("/v1/chat/completions", {**CHAT, "logprobs": True}, None, 400, "logprobs"),
    ("/v1/chat/completions", {**CHAT, "stream": "yes"}, None, 400, "stream"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, None, 400,
     "messages"),
    ("/v1/chat/completions", {**CHAT, "model": "gpt-9"}, None, 404, "model"),
    ("/v1/completions", {"prompt": ""}, None, 400, "prompt"),
    ("/v1/embeddings", {"input": [1, 2]}, None, 400, "input"),
    ("/v1/rerank", {"input": "x"}, None, 404, None),
])
def test_malformed_requests_get_openai_errors(server, path, body, raw, status, param):
    port, _, _ = server
    got, ctype, text, _ = call(port, "POST", path, body, raw)
    err = json.loads(text)["error"]
    assert got == status and ctype == "application/json"
    assert err["message"] and err["code"] == status and err["param"] == param
    assert call(port, "GET", "/v1/chat/completions")[0] == 405


def test_overload_answers_429_and_serves_the_rest(server):
    port, _, _ = server
    results = []

    def one():
        results.append(call(port, "POST", "/v1/chat/completions", {**CHAT, "max_tokens": 24, "ignore_eos": True}))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r[0] for r in results)
    assert 429 in codes and 200 in codes and set(codes) <= {200, 429}
    busy = next(r for r in results if r[0] == 429)
    assert json.loads(busy[2])["error"]["type"] == "rate_limit_exceeded"
    assert busy[3]["retry-after"] == "1"
    assert call(port, "GET", "/v1/models")[0] == 200  # still standing


def test_body_limit_and_keep_alive(server):
    port, _, _ = server
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/v1/chat/completions", body=b"x", headers={"Content-Length": str(64 * 1024 * 1024)})
    r = c.getresponse()
    assert r.status == 413 and json.loads(r.read())["error"]["code"] == 413
    c.close()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    socks = set()
    for _ in range(3):  # HTTP/1.1: one connection, three requests
        c.request("GET", "/health")
        r = c.getresponse()
        assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}
        socks.add(id(c.sock))
    assert len(socks) == 1 and c.sock is not None
    c.close()


def test_client_leaving_mid_stream_cancels_its_request(server):
    port, db, _ = server
    import socket
    import time

    body = json.dumps({"messages": [{"role": "user", "content": "Count slowly to one thousand."}], "max_tokens": 400,
                       "ignore_eos": True, "stream": True}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    got = b""
    while got.count(b"data: ") < 4:
        got += s.recv(65536)
    s.close()  # gone after a few tokens
    deadline = time.time() + 20
    while time.time() < deadline:  # the engine frees the slot: a new request is admitted and answered
        status, _, text, _ = call(port, "GET", "/metrics")
        if 'vllm:request_success_total{engine="0",finished_reason="abort",model_name="smollm2-135m"} 1.0' in text:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the abandoned request was not cancelled")
    assert 'vllm:num_requests_running{engine="0",model_name="smollm2-135m"} 0.0' in text


def test_requests_are_recorded_as_serve_sessions(server):
    port, db, proc = server
    call(port, "POST", "/v1/chat/completions", CHAT)
    stop_serve(proc)
    assert proc.returncode == 0
    from sessions.store import Store

    with Store(db, read_only=True) as store:
        kinds = dict(store.execute("SELECT kind, count(*) FROM sessions GROUP BY kind").fetchall())
        rows = store.execute("SELECT status, ttft_ms, output_tokens FROM requests").fetchall()
        msgs = store.execute("SELECT role FROM messages ORDER BY session_id, seq").fetchall()
        cut = store.execute("SELECT r.output_tokens, m.content FROM requests r JOIN messages m ON m.request_id = r.id"
                            " WHERE r.status = 'cancelled'").fetchall()
    assert kinds.get("serve", 0) >= 5 and set(kinds) == {"serve"}
    assert all(r[0] in ("finished", "cancelled") for r in rows) and any(r[1] and r[1] > 0 for r in rows)
    assert ("assistant",) in msgs and ("user",) in msgs
    # the stream whose client left: its partial reply is kept, marked cancelled
    assert len(cut) == 1 and 3 <= cut[0][0] < 400 and cut[0][1]
