"""The bench client's own overhead: a server streams pre-made tokens at a fixed rate (its own
process, asyncio), `sessions.bench` measures it through the openai backend, and the measured TTFT
and ITL are compared with the server's true send times (perf_counter is CLOCK_MONOTONIC on Linux,
one clock for both processes). TTFT error = client's first-token stamp - server's first send (the
client stamps the request's start itself, just before sending); ITL error = measured gap - sent gap.

    python tests/perf/bench_client_overhead.py [--streams 64] [--tokens 32] [--ttft-ms 50] [--itl-ms 20]

Exit 1 when |mean error| of TTFT or ITL exceeds --bar-ms (1 ms). `--serve PORT` runs only the server.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# ---- the fixed-rate server ----

class FixedRateServer:
    """`chunk_tokens` cycles the number of tokens each chunk holds (several, as a server with
    speculation sends them: a chunk leaves when its last token is due); `role_chunk` sends a
    role-only first chunk as vLLM does."""

    def __init__(self, ttft_s: float, itl_s: float, default_tokens: int, chunk_tokens: tuple[int, ...] = (1,),
                 role_chunk: bool = False):
        self.ttft_s = ttft_s
        self.itl_s = itl_s
        self.default_tokens = default_tokens
        self.chunk_tokens = chunk_tokens
        self.role_chunk = role_chunk
        self.truth: dict[str, dict] = {}
        self.counter = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _one(self, reader, writer) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        recv_ns = time.perf_counter_ns()
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        if method == "GET":
            payload = {"object": "list", "data": [{"id": "fixed-rate", "object": "model"}]} if path.endswith(
                "/models") else self.truth
            data = json.dumps(payload).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(data), data))
            await writer.drain()
            return True
        req = json.loads(body)
        n = int(req.get("max_tokens") or self.default_tokens)
        self.counter += 1
        rid = f"cmpl-{self.counter}"
        sends: list[int] = []
        self.truth[rid] = {"recv_ns": recv_ns, "sends": sends}
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        await writer.drain()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        k = 0
        c = 0
        while k < n:
            size = min(self.chunk_tokens[c % len(self.chunk_tokens)], n - k)
            c += 1
            due = t0 + self.ttft_s + (k + size - 1) * self.itl_s  # absolute schedule: no drift
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            data = b""
            if self.role_chunk and k == 0:
                role = {"id": rid, "object": "chat.completion.chunk", "model": "fixed-rate",
                        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
                data = b"data: " + json.dumps(role).encode() + b"\n\n"
            text = "".join(f"tok{k + j} " for j in range(size))
            chunk = {"id": rid, "object": "chat.completion.chunk", "model": "fixed-rate",
                     "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
            data += b"data: " + json.dumps(chunk).encode() + b"\n\n"
            now = time.perf_counter_ns()  # before write: the client may read it at once
            sends += [now] * size
            writer.write(data)
            await writer.drain()
            k += size
        end = {"id": rid, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
        usage = {"id": rid, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": n + 7}}
        writer.write(b"data: %s\n\ndata: %s\n\ndata: [DONE]\n\n" % (json.dumps(end).encode(), json.dumps(usage).encode()))
        await writer.drain()
        return False  # Connection: close


async def _serve(port: int, ttft_s: float, itl_s: float, tokens: int, chunk_tokens: tuple[int, ...] = (1,),
                 role_chunk: bool = False) -> None:
    srv = FixedRateServer(ttft_s, itl_s, tokens, chunk_tokens, role_chunk)
    server = await asyncio.start_server(srv.handle, "127.0.0.1", port, backlog=512)
    actual = server.sockets[0].getsockname()[1]
    print(f"listening {actual}", flush=True)
    async with server:
        await server.serve_forever()


def start_server(ttft_ms: float, itl_ms: float, tokens: int, chunk_tokens: tuple[int, ...] = (1,),
                 role_chunk: bool = False) -> tuple[subprocess.Popen, str]:
    """Start the fixed-rate server in its own process on a free port; returns (process, base_url)."""
    extra = ["--chunk-tokens", ",".join(map(str, chunk_tokens))] + (["--role-chunk"] if role_chunk else [])
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", "0", "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms),
         "--tokens", str(tokens), *extra],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening"):
        proc.kill()
        raise RuntimeError(f"fixed-rate server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def fetch_truth(base_url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(base_url + "/truth", timeout=10) as r:
        return json.loads(r.read())


# ---- the measurement ----

def measure(streams: int, tokens: int, ttft_ms: float, itl_ms: float, requests: int, db: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from engine import Engine
    from sessions.bench import BenchConfig, run_bench
    from sessions.report import load_run
    from sessions.store import Store

    proc, url = start_server(ttft_ms, itl_ms, tokens)
    try:
        engine = Engine.load(backend="openai", base_url=url)
        store = Store(db)
        cfg = BenchConfig(workload="chat", num_requests=requests, concurrency=streams, max_tokens=tokens,
                          ignore_eos=True, base_url=url)
        t = time.perf_counter()
        out = run_bench(engine, store, cfg)
        wall = time.perf_counter() - t
        engine.close()
        truth = fetch_truth(url)
        data = load_run(store, out.run_id)
        remote = dict(store.execute("SELECT request_id, remote_id FROM bench_requests WHERE run_id = ?",
                                    [out.run_id]).fetchall())
        store.close()
    finally:
        proc.terminate()
        proc.wait(10)
    ttft_err, ttft_vs_cfg, itl_err, itl_vs_cfg, transport, accept = [], [], [], [], [], []
    for r in data.records:
        t = truth.get(remote.get(r.request_id))
        if not r.completed or t is None or len(t["sends"]) != len(r.token_times_ns):
            continue
        # the true TTFT runs from the request's send to the server's first-token send; the client
        # stamps both ends itself, so its error is how late it stamps the first token
        ttft_vs_cfg.append(r.ttft_ms - ttft_ms)
        ttft_err.append((r.first_token_ns - t["sends"][0]) / 1e6)
        accept.append((t["recv_ns"] - r.arrival_ns) / 1e6)
        transport += [(c - s) / 1e6 for c, s in zip(r.token_times_ns, t["sends"])]
        sends = t["sends"]
        true_gaps = [(b - a) / 1e6 for a, b in zip(sends, sends[1:])]
        itl_err += [m - g for m, g in zip(r.itl_ms, true_gaps)]
        itl_vs_cfg += [m - itl_ms for m in r.itl_ms]

    def summary(xs: list[float]) -> dict:
        xs_sorted = sorted(xs)
        return {"mean": statistics.fmean(xs), "mean_abs": statistics.fmean(abs(x) for x in xs),
                "median": statistics.median(xs),
                "p99": xs_sorted[int(0.99 * (len(xs) - 1))], "n": len(xs)}

    return {
        "streams": streams, "tokens": tokens, "requests": requests, "matched": len(ttft_err), "wall_s": wall,
        "ttft_error_ms": summary(ttft_err), "ttft_vs_configured_ms": summary(ttft_vs_cfg),
        "itl_error_ms": summary(itl_err), "itl_vs_configured_ms": summary(itl_vs_cfg),
        "receipt_minus_send_ms": summary(transport),
        "send_to_server_read_ms": summary(accept),  # connect + transfer + the server's accept: not the client's error
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", type=int, metavar="PORT", help="only run the fixed-rate server")
    ap.add_argument("--streams", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--requests", type=int, default=0, help="default: 2 x streams")
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--itl-ms", type=float, default=20.0)
    ap.add_argument("--bar-ms", type=float, default=1.0)
    ap.add_argument("--chunk-tokens", default="1", help="with --serve: tokens per chunk, cycled, e.g. 1,3,2")
    ap.add_argument("--role-chunk", action="store_true", help="with --serve: a role-only first chunk, as vLLM sends")
    a = ap.parse_args()
    if a.serve is not None:
        chunks = tuple(int(x) for x in a.chunk_tokens.split(","))
        asyncio.run(_serve(a.serve, a.ttft_ms / 1e3, a.itl_ms / 1e3, a.tokens, chunks, a.role_chunk))
        return 0
    with tempfile.TemporaryDirectory() as d:
        res = measure(a.streams, a.tokens, a.ttft_ms, a.itl_ms, a.requests or 2 * a.streams, os.path.join(d, "b.duckdb"))
    print(json.dumps(res, indent=2))
    # ITL errors telescope (their plain mean is ~0 by construction), so the bar is on |error|
    ok = res["ttft_error_ms"]["mean_abs"] <= a.bar_ms and res["itl_error_ms"]["mean_abs"] <= a.bar_ms
    print(f"{'PASS' if ok else 'FAIL'}: mean |TTFT error| {res['ttft_error_ms']['mean_abs']:.3f} ms, "
          f"mean |ITL error| {res['itl_error_ms']['mean_abs']:.3f} ms (bar {a.bar_ms} ms) at {a.streams} streams")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
