"""Agent traces on the command line: `import` files in any known format, list `traces`,
`trace show` one, find N+1 / redundant / loop tool calls with `nplus1`, and `replay` one on the engine."""
from __future__ import annotations

import argparse
import os
import sys

PROGRESS_MIN_BYTES = 8 * 1024 * 1024  # files smaller than this import before a bar would help


def register(sub, common) -> None:
    from engine.types import SPECULATION_MODES

    from_formats = "otlp, langfuse, swe-agent, tau-bench, langsmith, openhands, anthropic, openai"
    p = sub.add_parser("import", parents=[common], help="import agent trace files (format auto-detected)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", dest="trace_format", metavar="NAME", help=f"force a format: {from_formats}")
    p.add_argument("--json", action="store_true", help="per file: the format detected and the trace ids stored")
    p.set_defaults(func=import_cmd)

    p = sub.add_parser("traces", parents=[common], help="list imported traces")
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=500)
    p.set_defaults(func=traces_cmd)

    p = sub.add_parser("trace", parents=[common], help="one imported trace: `trace show ID`")
    s = p.add_subparsers(title="actions", metavar="ACTION", required=True)
    show = s.add_parser("show", parents=[common], help="span tree with timings, tools and tokens")
    show.add_argument("id", help="trace id (a unique prefix is enough)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_cmd)

    p = sub.add_parser("nplus1", parents=[common], help="find N+1, redundant and looping tool calls")
    p.add_argument("trace", nargs="?", help="one trace id (default: every imported trace)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--min-repeats", type=int, default=None, metavar="N", help="calls in an N+1 run (default 3)")
    p.add_argument("--min-total-ms", type=float, default=None, metavar="MS", help="tool time of an N+1 run (default 50)")
    p.set_defaults(func=nplus1_cmd)

    p = sub.add_parser("replay", parents=[common], help="re-run a trace's LLM calls on the engine and compare TTFT/e2e")
    p.add_argument("trace", help="trace id (a unique prefix is enough)")
    p.add_argument("--speculation", default="auto", choices=SPECULATION_MODES)
    p.add_argument("--max-tokens", type=int, default=None, metavar="N",
                   help="output tokens per call (default: the original call's, else 128)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=replay_cmd)


# ---- import ----


def _read(path: str, show) -> bytes:
    from sessions.traces.importers import TraceImportError

    try:
        size = os.path.getsize(path)
        chunks, done = [], 0
        with open(path, "rb") as f:
            while chunk := f.read(4 * 1024 * 1024):
                chunks.append(chunk)
                done += len(chunk)
                show("reading", done, size)
        return b"".join(chunks)
    except FileNotFoundError:
        raise TraceImportError(path, None, "no such file") from None
    except IsADirectoryError:
        raise TraceImportError(path, None, "is a directory") from None
    except OSError as e:
        raise TraceImportError(path, None, e.strerror or str(e)) from None


def import_one(store, path: str, fmt: str | None) -> dict:
    from sessions.traces.importers import parse_bytes
    from sessions.traces.store import save_parsed

    try:
        big = os.path.getsize(path) >= PROGRESS_MIN_BYTES
    except OSError:
        big = False
    from workbench.progress import ProgressLine

    line = ProgressLine(enabled=big and sys.stderr.isatty())  # large files only: small ones are quick
    label = os.path.basename(path)

    def show(stage: str, done: float, total: float) -> None:
        line.draw(done, total, before=f"{label} {stage:<8} ")

    try:
        data = _read(path, show)
        parsed = parse_bytes(data, path, fmt, on_stage=lambda st: show(st, 0, 1))
        stored = save_parsed(store, parsed, on_rows=lambda d, t: show("storing", d, t))
    finally:
        line.close(keep=False)
    return {"file": path, "format": stored.format, "trace_ids": stored.trace_ids, "new_trace_ids": stored.new_ids,
            "already_stored": [t for t in stored.trace_ids if t not in stored.new_ids],
            "has_timings": stored.has_timings, "spans": stored.spans, "bytes": parsed.size}


def import_cmd(args: argparse.Namespace) -> int:
    from sessions.traces.importers import FORMATS, TraceImportError
    from workbench.cli import CliError
    from workbench.context import open_store, print_json

    if args.trace_format and args.trace_format not in FORMATS:
        raise CliError(f"unknown format {args.trace_format!r}; known: {', '.join(FORMATS)}")
    results, failed = [], 0
    with open_store(args) as store:
        for path in args.files:
            try:
                r = import_one(store, path, args.trace_format)
            except TraceImportError as e:  # this file stored nothing; go on with the others
                failed += 1
                print(f"workbench: error: {e}", file=sys.stderr)
                results.append({"file": path, "error": {"where": e.where, "reason": e.reason, "message": str(e)}})
                continue
            results.append(r)
            if not args.json:
                _print_import(r)
    if args.json:
        print_json(results)
    elif failed:
        print(f"{failed} of {len(args.files)} file(s) failed; nothing of those was stored", file=sys.stderr)
    return 2 if failed else 0


def _print_import(r: dict) -> None:
    ids = ", ".join(r["trace_ids"][:5]) + (" ..." if len(r["trace_ids"]) > 5 else "")
    again = f" ({len(r['already_stored'])} already stored)" if r["already_stored"] else ""
    print(f"{r['file']}: {r['format']}, {len(r['trace_ids'])} trace(s), {r['spans']} spans: {ids}{again}")
    if not r["has_timings"]:
        print(f"  note: {r['format']} records no timings; times are stored as NULL, not invented")


# ---- listing and showing ----


def traces_cmd(args: argparse.Namespace) -> int:
    from sessions.traces.store import list_traces
    from workbench.context import open_store, print_json
    from workbench.tables import render_table

    with open_store(args) as store:
        rows = list_traces(store, limit=args.limit)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no traces yet: run `workbench import FILE...`")
        return 0
    print(render_table(
        ["id", "format", "spans", "llm", "tools", "duration ms", "in tok", "out tok", "name"],
        [[r["id"], r["format"], r["spans"], r["llm_calls"], r["tool_calls"],
          r["duration_ms"] if r["has_timings"] else "no timings", r["input_tokens"], r["output_tokens"],
          (r["name"] or "")[:40]] for r in rows],
        right={2, 3, 4, 5, 6, 7},
    ))
    return 0


def show_cmd(args: argparse.Namespace) -> int:
    from sessions.traces.store import get_trace
    from workbench.context import open_store, print_json

    with open_store(args) as store:
        t = get_trace(store, args.id)
    if args.json:
        print_json(t)
        return 0
    print(f"trace {t['id']}  {t['format']}  {t['name']}  ({t['span_count']} spans, from {t['source']})")
    if not t["has_timings"]:
        print("this format records no timings: durations are not shown (none are invented)")
    children: dict = {}
    for s in t["spans"]:
        children.setdefault(s["parent_id"], []).append(s)
    ids = {s["span_id"] for s in t["spans"]}
    roots = [s for s in t["spans"] if s["parent_id"] is None or s["parent_id"] not in ids]
    for s in roots:
        _print_span(s, children, 0)
    return 0


def _print_span(s: dict, children: dict, depth: int) -> None:
    dur = "" if s["duration_ms"] is None else f"  {s['duration_ms']:.1f} ms"
    ttft = "" if s["ttft_ms"] is None else f"  ttft {s['ttft_ms']:.1f} ms"
    tok = ""
    if s["input_tokens"] is not None or s["output_tokens"] is not None:
        tok = f"  tokens {s['input_tokens'] or 0}→{s['output_tokens'] or 0}"
    what = s["name"]
    if s["kind"] == "tool":
        args = s["tool_arguments"]
        what = f"{s['tool_name']}({_short(args)})"
    err = "  ERROR" if s["status"] == "error" else ""
    print(f"{'  ' * depth}[{s['kind']}] {what}{dur}{ttft}{tok}{err}")
    for c in children.get(s["span_id"], []):
        if c is not s:
            _print_span(c, children, depth + 1)


def _short(v, n: int = 60) -> str:
    import json

    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


# ---- nplus1 ----


def nplus1_cmd(args: argparse.Namespace) -> int:
    from sessions.traces.nplus1 import DetectorSettings, detect
    from sessions.traces.store import load_trace, resolve_trace_id, trace_ids
    from workbench.context import open_store, print_json
    from workbench.tables import render_table

    settings = DetectorSettings()
    if args.min_repeats is not None:
        settings.nplus1.min_repeats = args.min_repeats
    if args.min_total_ms is not None:
        settings.nplus1.min_total_ms = args.min_total_ms
    findings = []
    with open_store(args) as store:
        ids = [resolve_trace_id(store, args.trace)] if args.trace else trace_ids(store)
        for tid in ids:
            findings.extend(f.to_dict() for f in detect(load_trace(store, tid), settings))
    if args.json:
        print_json(findings)
        return 0
    if not findings:
        print(f"no N+1, redundant or looping tool calls in {len(ids)} trace(s)")
        return 0
    print(render_table(
        ["kind", "trace", "tool", "count", "total ms", "saved ms (est.)", "dispatch", "fingerprint"],
        [[f["kind"], f["trace_id"], _short(f["tool"], 40), f["count"],
          f["total_ms"] if f["total_ms"] is not None else "no timings", f["saved_ms_estimate"], f["dispatch"],
          f["fingerprint"]] for f in findings],
        right={3, 4, 5},
    ))
    print()
    for f in findings:
        print(f"{f['kind']} {f['tool']} ×{f['count']} in {f['trace_id']}: {f['estimate_method']}")
    return 0


# ---- replay ----


def replay_cmd(args: argparse.Namespace) -> int:
    from sessions.traces.replay import replay_trace
    from sessions.traces.store import load_trace
    from workbench.context import load_engine, open_store, print_json
    from workbench.tables import render_table

    with open_store(args) as store:
        trace = load_trace(store, args.trace)
        engine = load_engine(args, speculation=args.speculation)
        try:
            result = replay_trace(store, engine, trace, max_tokens=args.max_tokens)
        finally:
            engine.close()
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"replayed trace {result.trace_id} on {result.model} ({result.backend}) as session {result.session_id}")
    print(render_table(
        ["step", "span", "orig ttft ms", "replay ttft ms", "orig e2e ms", "replay e2e ms", "prompt tok", "out tok", "finish"],
        [[s.step, s.span_id, s.original_ttft_ms, s.replayed_ttft_ms, s.original_e2e_ms, s.replayed_e2e_ms,
          s.prompt_tokens, s.output_tokens, s.finish_reason] for s in result.steps],
        right={2, 3, 4, 5, 6, 7},
    ))
    if trace.has_timings is False:
        print(f"the original {trace.format} trace records no timings: its TTFT and e2e are shown as '-'")
    if result.skipped:
        print(f"{len(result.skipped)} LLM call(s) skipped: the trace kept no input for them")
    return 0
