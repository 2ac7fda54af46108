"""Benchmark: import speed (MB/s) of a generated large OTLP JSON agent trace into DuckDB, against
plain json.loads of the same bytes, and N+1 detection time over 100,000 spans. Prints JSON.

Run: PYTHONPATH=. python tests/perf/bench_traces.py [--mb 40] [--spans 100000]
Targets: import >= 20 MB/s; detection over 100,000 spans < 1 s."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from sessions.store import Store  # noqa: E402
from sessions.traces.importers import parse_bytes  # noqa: E402
from sessions.traces.model import Span, ToolCall, Trace  # noqa: E402
from sessions.traces.nplus1 import detect  # noqa: E402
from sessions.traces.store import save_parsed  # noqa: E402


def _kv(k, v):
    if isinstance(v, int):
        return {"key": k, "value": {"intValue": str(v)}}
    return {"key": k, "value": {"stringValue": v}}


def otlp_trace(target_bytes: int) -> bytes:
    """One agent trace: chat spans with message payloads and tool spans, some in N+1 runs."""
    spans, t, n = [], 1_718_000_000_000_000_000, 0
    tid = "5b8efff798038103d269b633813fc60c"
    spans.append({"traceId": tid, "spanId": "root", "name": "invoke_agent bench", "startTimeUnixNano": str(t),
                  "endTimeUnixNano": str(t + 10**12), "attributes": [_kv("gen_ai.operation.name", "invoke_agent")]})
    size = 0
    while size < target_bytes:
        n += 1
        history = json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"step {n}: " + "lorem ipsum " * 40}]}])
        chat = {"traceId": tid, "spanId": f"c{n}", "parentSpanId": "root", "name": "chat m", "startTimeUnixNano": str(t),
                "endTimeUnixNano": str(t + 300_000_000), "status": {"code": 1},
                "attributes": [_kv("gen_ai.operation.name", "chat"), _kv("gen_ai.request.model", "gpt-4o"),
                               _kv("gen_ai.usage.input_tokens", 1000 + n), _kv("gen_ai.usage.output_tokens", 40),
                               _kv("gen_ai.input.messages", history)]}
        t += 300_000_000
        tool = {"traceId": tid, "spanId": f"t{n}", "parentSpanId": "root", "name": "execute_tool get_order",
                "startTimeUnixNano": str(t), "endTimeUnixNano": str(t + 40_000_000), "status": {"code": 1},
                "attributes": [_kv("gen_ai.operation.name", "execute_tool"), _kv("gen_ai.tool.name", "get_order" if n % 10 < 5 else f"tool_{n % 7}"),
                               _kv("gen_ai.tool.call.id", f"call_{n}"), _kv("gen_ai.tool.call.arguments", json.dumps({"order_id": n})),
                               _kv("gen_ai.tool.call.result", json.dumps({"status": "shipped", "items": [1, 2, 3]}))]}
        t += 40_000_000
        spans += [chat, tool]
        size += len(json.dumps(chat)) + len(json.dumps(tool))
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [_kv("service.name", "bench")]},
                                          "scopeSpans": [{"scope": {"name": "bench"}, "spans": spans}]}]}).encode()


def synthetic_trace(n_spans: int) -> Trace:
    """Alternating llm / tool spans with N+1 runs, redundant calls and a loop, all timed."""
    spans, t = [Span("root", "agent", "agent")], 0
    for i in range(1, n_spans):
        if i % 2:
            spans.append(Span(f"s{i}", "llm", "chat", "root", i, t, t + 200_000_000))
        else:
            k = i // 2
            tool = ("get_order", {"order_id": k}) if k % 12 < 5 else ("search", {"q": "same"}) if k % 12 < 7 else (f"t{k % 5}", {"x": k % 3})
            spans.append(Span(f"s{i}", "tool", tool[0], "root", i, t, t + 30_000_000,
                              tool_call=ToolCall(f"c{i}", tool[0], tool[1], "ok")))
        t += 250_000_000
    return Trace("bench", "synthetic", "bench", spans)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=40.0)
    ap.add_argument("--spans", type=int, default=100_000)
    a = ap.parse_args()

    data = otlp_trace(int(a.mb * 1024 * 1024))
    mb = len(data) / 1024 / 1024
    t0 = time.perf_counter()
    json.loads(data)
    json_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as d, Store(os.path.join(d, "bench.duckdb")) as store:
        t0 = time.perf_counter()
        parsed = parse_bytes(data, "bench.json")
        parse_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        stored = save_parsed(store, parsed)
        store_s = time.perf_counter() - t1
        import_s = time.perf_counter() - t0

    trace = synthetic_trace(a.spans)
    t0 = time.perf_counter()
    findings = detect(trace)
    detect_s = time.perf_counter() - t0

    out = {
        "import": {"bytes": len(data), "mb": round(mb, 2), "spans": stored.spans, "seconds": round(import_s, 3),
                   "parse_seconds": round(parse_s, 3), "store_seconds": round(store_s, 3),
                   "mb_per_s": round(mb / import_s, 1), "json_loads_mb_per_s": round(mb / json_s, 1),
                   "ratio_to_json_loads": round(json_s / import_s, 3), "target_mb_per_s": 20,
                   "meets_target": mb / import_s >= 20},
        "nplus1": {"spans": a.spans, "seconds": round(detect_s, 3), "findings": len(findings),
                   "by_kind": {k: sum(f.kind == k for f in findings) for k in ("n_plus_one", "redundant", "loop")},
                   "target_seconds": 1.0, "meets_target": detect_s < 1.0},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
