"""Benchmark: import speed (MB/s) of a directory of many real trace files and of one generated large
OTLP file into DuckDB, each against json.loads of the same bytes, and N+1 detection over 100,000 spans.

Run: PYTHONPATH=. python tests/perf/bench_traces.py [--dir-mb 100] [--mb 40] [--spans 100000] [--repeat 3]
Targets: import >= 20 MB/s (a directory of real files, as `workbench import DIR` runs it); detection
over 100,000 spans < 1 s. Each is measured --repeat times with its baseline in the same run (best and
median reported), and the load average is printed: on a shared machine the ratios say more. The
directory is the corpus in tests/fixtures/traces copied until it holds --dir-mb: whole real files,
each copy made distinct by trailing newlines (so each is a new file to the store, not a duplicate)."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from sessions.store import Store  # noqa: E402
from sessions.traces import fastjson  # noqa: E402
from sessions.traces.bulk import expand, import_files  # noqa: E402
from sessions.traces.gcpause import gc_paused  # noqa: E402
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


def _best_and_median(times: list[float]) -> tuple[float, float]:
    return min(times), statistics.median(times)


def bench_import(data: bytes, repeat: int) -> dict:
    """Parse + store into a fresh DuckDB file, `repeat` times, against json.loads of the same bytes
    timed in between (plain, and with the cyclic GC paused as the importer runs it): on a shared
    machine only the ratio and the best of several runs mean much."""
    mb = len(data) / 1024 / 1024
    loads, loads_nogc, parse, store, total = [], [], [], [], []
    spans = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        json.loads(data)
        loads.append(time.perf_counter() - t0)
        with gc_paused():
            t0 = time.perf_counter()
            json.loads(data)
            loads_nogc.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as d, Store(os.path.join(d, "bench.duckdb")) as st:
            t0 = time.perf_counter()
            parsed = parse_bytes(data, "bench.json")
            t1 = time.perf_counter()
            stored = save_parsed(st, parsed)
            t2 = time.perf_counter()
        del parsed
        spans = stored.spans
        parse.append(t1 - t0)
        store.append(t2 - t1)
        total.append(t2 - t0)
    best, median = _best_and_median(total)
    return {
        "bytes": len(data), "mb": round(mb, 2), "spans": spans, "runs": repeat,
        "seconds_best": round(best, 3), "seconds_median": round(median, 3),
        "parse_seconds_best": round(min(parse), 3), "store_seconds_best": round(min(store), 3),
        "us_per_span_best": round(best / spans * 1e6, 1),
        "mb_per_s_best": round(mb / best, 1), "mb_per_s_median": round(mb / median, 1),
        # the first run also pays one-off costs a CLI import pays too (numpy's import, cold pages)
        "mb_per_s_first_run": round(mb / total[0], 1),
        "json_loads_mb_per_s_best": round(mb / min(loads), 1),
        "json_loads_gc_paused_mb_per_s_best": round(mb / min(loads_nogc), 1),
        # import speed / json.loads speed on the same bytes, best against best: 1.0 would be an
        # import as fast as parsing the JSON alone (the importer parses it too, GC paused)
        "ratio_to_json_loads": round(min(loads) / best, 3),
        "ratio_to_json_loads_gc_paused": round(min(loads_nogc) / best, 3),
        "target_mb_per_s": 20, "meets_target": mb / best >= 20,
    }


CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "traces")


def corpus_directory(target_bytes: int, into: str) -> tuple[list[str], int]:
    """Copies of every corpus file, round after round, until the directory holds target_bytes."""
    files, _ = expand([CORPUS])
    blobs = [(os.path.relpath(f, CORPUS), open(f, "rb").read()) for f in files]
    total, n = 0, 0
    while total < target_bytes:
        for rel, data in blobs:
            stem, _, ext = os.path.basename(rel).partition(".")
            path = os.path.join(into, os.path.dirname(rel), f"{stem}-{n:05d}.{ext}")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data + b"\n" * (n + 1))
            total += len(data) + n + 1
        n += 1
    return expand([into])[0], total


def _stdlib_loads(data: bytes) -> object:
    try:
        return json.loads(data)
    except json.JSONDecodeError:  # JSONL
        return [json.loads(line) for line in data.splitlines() if line.strip()]


def bench_directory(target_mb: float, repeat: int) -> dict:
    """`workbench import DIR` minus the process start: expand, read, parse, store in batches, into
    a fresh DuckDB file each run, against json.loads of every file's bytes."""
    with tempfile.TemporaryDirectory() as d:
        files, total = corpus_directory(int(target_mb * 1024 * 1024), os.path.join(d, "traces"))
        mb = total / 1024 / 1024
        loads, times, traces = [], [], 0
        for r in range(repeat):
            t0 = time.perf_counter()
            for f in files:
                with open(f, "rb") as fh:
                    _stdlib_loads(fh.read())
            loads.append(time.perf_counter() - t0)
            db = os.path.join(d, f"bench{r}.duckdb")
            with Store(db) as st:
                t0 = time.perf_counter()
                results = import_files(st, expand([os.path.join(d, "traces")])[0])
                times.append(time.perf_counter() - t0)
            traces = sum(len(x.stored.trace_ids) for x in results if x.stored)
            assert not any(x.error for x in results), [str(x.error) for x in results if x.error][:3]
            os.remove(db)
    best, median = _best_and_median(times)
    return {
        "files": len(files), "mb": round(mb, 1), "traces": traces, "runs": repeat,
        "json_library": "orjson" if fastjson.orjson is not None else "stdlib json",
        "seconds_best": round(best, 2), "seconds_median": round(median, 2),
        "mb_per_s_best": round(mb / best, 1), "mb_per_s_median": round(mb / median, 1),
        "json_loads_mb_per_s_best": round(mb / min(loads), 1),
        "ratio_to_json_loads": round(min(loads) / best, 3),
        "target_mb_per_s": 20, "meets_target": mb / best >= 20,
    }


def bench_nplus1(n_spans: int, repeat: int) -> dict:
    """Detection over one synthetic trace, against a floor measured in the same run: encoding
    every tool call's arguments once as canonical JSON, the least a detector comparing them does."""
    trace = synthetic_trace(n_spans)
    args = [s.tool_call.arguments for s in trace.spans if s.tool_call]
    times, floor = [], []
    findings = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for a in args:
            json.dumps(a, sort_keys=True, separators=(",", ":"))
        floor.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        findings = detect(trace)
        times.append(time.perf_counter() - t0)
    best, median = _best_and_median(times)
    return {
        "spans": n_spans, "tool_calls": len(args), "runs": repeat,
        "seconds_best": round(best, 3), "seconds_median": round(median, 3), "seconds_first_run": round(times[0], 3),
        "us_per_span_best": round(best / n_spans * 1e6, 2),
        "json_dumps_args_seconds_best": round(min(floor), 3),
        "ratio_to_json_dumps_args": round(best / min(floor), 2),
        "findings": len(findings),
        "by_kind": {k: sum(f.kind == k for f in findings) for k in ("n_plus_one", "redundant", "loop")},
        "target_seconds": 1.0, "meets_target": best < 1.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir-mb", type=float, default=100.0, help="size of the directory of real files")
    ap.add_argument("--mb", type=float, default=40.0, help="size of the one generated OTLP file")
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement; best and median are reported")
    a = ap.parse_args()

    machine = {"cpus": os.cpu_count(), "loadavg_1m_before": round(os.getloadavg()[0], 2)}
    # detection first: after a 20 MB import the freed document leaves a fragmented heap that
    # slows every later allocation-heavy loop (the floor included) by about a third
    nplus1 = bench_nplus1(a.spans, a.repeat)
    directory = bench_directory(a.dir_mb, a.repeat)
    out = {"machine": machine, "import_directory": directory,
           "import": bench_import(otlp_trace(int(a.mb * 1024 * 1024)), a.repeat), "nplus1": nplus1}
    out["machine"]["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
