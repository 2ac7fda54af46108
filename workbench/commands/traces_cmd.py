"""Agent traces on the command line: `import` files or directories in any known format, list `traces`,
`trace show` one, list what the detectors find with `findings` (alias `nplus1`), and `replay` one on the engine."""
from __future__ import annotations

import argparse
import os
import sys

PROGRESS_MIN_BYTES = 8 * 1024 * 1024  # files smaller than this import before a bar would help


def register(sub, common) -> None:
    from engine.types import SPECULATION_MODES

    from_formats = "otlp, langfuse, swe-agent, tau-bench, langsmith, openhands, anthropic, openai"
    p = sub.add_parser("import", parents=[common], help="import agent trace files or directories (format auto-detected)")
    p.add_argument("files", nargs="+", metavar="FILE_OR_DIR", help="trace files, or directories to search for them (recursively)")
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

    p = sub.add_parser("findings", aliases=["nplus1"], parents=[common],
                       help="what the detectors find: retries, N+1, redundant calls, loops, write amplification, "
                            "held connections, cold starts")
    p.add_argument("trace", nargs="?", help="one trace id (default: every imported trace)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--kind", action="append", default=[], metavar="KIND", help="only these kinds (repeatable)")
    p.add_argument("--min-repeats", type=int, default=None, metavar="N", help="calls in an N+1 run (default 3)")
    p.add_argument("--min-total-ms", type=float, default=None, metavar="MS", help="tool time of an N+1 run (default 50)")
    p.set_defaults(func=findings_cmd)

    p = sub.add_parser("replay", parents=[common], help="re-run a trace's LLM calls on the engine and compare TTFT/e2e")
    p.add_argument("trace", help="trace id (a unique prefix is enough)")
    p.add_argument("--speculation", default="auto", choices=SPECULATION_MODES)
    p.add_argument("--max-tokens", type=int, default=None, metavar="N",
                   help="output tokens per call (default: the original call's, else 128)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=replay_cmd)


# ---- import ----


def import_cmd(args: argparse.Namespace) -> int:
    from sessions.traces.bulk import TRACE_SUFFIXES, expand, import_files
    from sessions.traces.importers import FORMATS
    from workbench.cli import CliError
    from workbench.context import open_store, print_json
    from workbench.progress import ProgressLine

    if args.trace_format and args.trace_format not in FORMATS:
        raise CliError(f"unknown format {args.trace_format!r}; known: {', '.join(FORMATS)}")
    files, skipped = expand(args.files)
    if not files:
        raise CliError(f"no trace files in {', '.join(args.files)} (looked for {', '.join(TRACE_SUFFIXES)})")
    many = len(files) > 1
    line = ProgressLine(enabled=sys.stderr.isatty() and (many or _size(files[0]) >= PROGRESS_MIN_BYTES))

    def show(p) -> None:
        rate = p.bytes_done / 1e6 / p.elapsed if p.elapsed > 0 else 0.0
        line.draw(p.fraction, 1.0, before=f"importing {p.files_done}/{p.files_total} files ",
                  after=f" {p.bytes_done / 1e6:.1f}/{p.bytes_total / 1e6:.1f} MB {rate:.1f} MB/s")

    def report(r) -> None:
        if r.error is not None:
            line.close(keep=False)  # the error gets its own line, the bar comes back on the next draw
            print(f"workbench: error: {r.error}", file=sys.stderr)
        elif not args.json and not many:
            _print_import(_result(r))

    with open_store(args) as store:
        try:
            results = import_files(store, files, args.trace_format, on_result=report, on_progress=show)
        finally:
            line.close(keep=False)
    failed = [r for r in results if r.error is not None]
    if args.json:
        print_json([_result(r) for r in results])
    elif many:
        _print_summary(results, skipped, line.elapsed)
    if failed and not args.json:
        print(f"{len(failed)} of {len(files)} file(s) failed; nothing of those was stored", file=sys.stderr)
    return 2 if failed else 0


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _result(r) -> dict:
    if r.error is not None:
        e = r.error
        return {"file": r.path, "error": {"where": e.where, "reason": e.reason, "message": str(e)}}
    st = r.stored
    return {"file": r.path, "format": st.format, "trace_ids": st.trace_ids, "new_trace_ids": st.new_ids,
            "already_stored": [t for t in st.trace_ids if t not in st.new_ids],
            "has_timings": st.has_timings, "spans": st.spans, "bytes": r.size}


def _print_summary(results: list, skipped: list[str], elapsed: float) -> None:
    """A directory of hundreds of files gets a tally, not a line per file."""
    from collections import Counter

    ok = [r for r in results if r.stored is not None]
    by_format = Counter(r.stored.format for r in ok)
    traces = sum(len(r.stored.trace_ids) for r in ok)
    new = sum(len(r.stored.new_ids) for r in ok)
    size = sum(r.size for r in results)
    rate = size / 1e6 / elapsed if elapsed > 0 else 0.0
    print(f"imported {len(ok)} of {len(results)} files ({size / 1e6:.1f} MB in {elapsed:.1f} s, {rate:.1f} MB/s): "
          f"{traces} trace(s), {new} new")
    for fmt, n in by_format.most_common():
        untimed = sum(1 for r in ok if r.stored.format == fmt and not r.stored.has_timings)
        note = f" ({untimed} without timings: stored as NULL, not invented)" if untimed else ""
        print(f"  {fmt}: {n} file(s){note}")
    if skipped:
        print(f"  skipped {len(skipped)} file(s) that are not trace files (by name), e.g. {skipped[0]}")


def _print_import(r: dict) -> None:
    ids = ", ".join(r["trace_ids"][:5]) + (" ..." if len(r["trace_ids"]) > 5 else "")
    again = f" ({len(r['already_stored'])} already stored)" if r["already_stored"] else ""
    print(f"{r['file']}: {r['format']}, {len(r['trace_ids'])} trace(s), {r['spans']} spans: {ids}{again}")
    if not r["has_timings"]:
        print(f"  note: {r['format']} records no timings; times are stored as NULL, not invented")


# ---- listing and showing ----


def traces_cmd(args: argparse.Namespace) -> int:
    from sessions.traces.store import list_traces
    from workbench.context import emit, open_store

    with open_store(args) as store:
        rows = list_traces(store, limit=args.limit)
    return emit(args, rows, _print_traces, empty="no traces yet: run `workbench import FILE...`")


def _print_traces(rows: list[dict]) -> None:
    from workbench.tables import print_table

    print_table(
        ["id", "format", "spans", "llm", "tools", "duration ms", "in tok", "out tok", "name", "not recorded"],
        [[r["id"], r["format"], r["spans"], r["llm_calls"], r["tool_calls"],
          r["duration_ms"] if r["duration_ms"] is not None else ("no timings" if not r["has_timings"] else "steps only"),
          r["input_tokens"] if r["input_tokens"] is not None or not r["llm_calls"] else "n/r",
          r["output_tokens"] if r["output_tokens"] is not None or not r["llm_calls"] else "n/r",
          (r["name"] or "")[:40], ", ".join(r["not_recorded"]) or "-"] for r in rows],
        right={2, 3, 4, 5, 6, 7},
    )
    if any(r["not_recorded"] for r in rows):
        print("n/r: not recorded by the trace's format (not zero); `not recorded` lists what each trace lacks")


def show_cmd(args: argparse.Namespace) -> int:
    from sessions.traces.store import get_trace
    from workbench.context import emit, open_store

    with open_store(args) as store:
        t = get_trace(store, args.id)
    return emit(args, t, _print_trace)


def _print_trace(t: dict) -> None:
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


# ---- findings ----


def findings_cmd(args: argparse.Namespace) -> int:
    from sessions.traces.findings import KINDS, FindingSettings, detect
    from sessions.traces.store import load_trace, resolve_trace_id, trace_ids
    from workbench.cli import CliError
    from workbench.context import emit, open_store

    unknown = [k for k in args.kind if k not in KINDS]
    if unknown:
        raise CliError(f"unknown finding kind {unknown[0]!r}; known: {', '.join(KINDS)}")
    settings = FindingSettings()
    if args.min_repeats is not None:
        settings.calls.nplus1.min_repeats = args.min_repeats
    if args.min_total_ms is not None:
        settings.calls.nplus1.min_total_ms = args.min_total_ms
    findings = []
    with open_store(args) as store:
        ids = [resolve_trace_id(store, args.trace)] if args.trace else trace_ids(store)
        for tid in ids:
            findings.extend(f.to_dict() for f in detect(load_trace(store, tid), settings)
                            if not args.kind or f.kind in args.kind)
    return emit(args, findings, _print_findings, empty=f"nothing found in {len(ids)} trace(s) ({', '.join(args.kind or KINDS)})")


def _print_findings(findings: list[dict]) -> None:
    from workbench.tables import print_table

    print_table(
        ["kind", "trace", "subject", "count", "total ms", "saved ms (est.)", "fingerprint"],
        [[f["kind"], f["trace_id"], _short(f["tool"], 40), f["count"],
          f["total_ms"] if f["total_ms"] is not None else "no timings", f["saved_ms_estimate"],
          f["fingerprint"]] for f in findings],
        right={3, 4, 5},
    )
    print()
    for f in findings:
        what = f"{f['detail']}; " if f["detail"] else ""
        print(f"{f['kind']} {f['tool']} ×{f['count']} in {f['trace_id']}: {what}{f['estimate_method']}")


# ---- replay ----


def replay_cmd(args: argparse.Namespace) -> int:
    from sessions.traces.replay import replay_trace
    from sessions.traces.store import load_trace
    from workbench.context import emit, engine_for, open_store

    with open_store(args) as store:
        trace = load_trace(store, args.trace)
        engine = engine_for(args, speculation=args.speculation)
        try:
            result = replay_trace(store, engine, trace, max_tokens=args.max_tokens)
        finally:
            engine.close()
    return emit(args, result.to_dict(), lambda _: _print_replay(result, trace))


def _print_replay(result, trace) -> None:
    from workbench.tables import print_table

    print(f"replayed trace {result.trace_id} on {result.model} ({result.backend}) as session {result.session_id}")
    print_table(
        ["step", "span", "orig ttft ms", "replay ttft ms", "orig e2e ms", "replay e2e ms", "prompt tok", "out tok", "finish"],
        [[s.step, s.span_id, s.original_ttft_ms, s.replayed_ttft_ms, s.original_e2e_ms, s.replayed_e2e_ms,
          s.prompt_tokens, s.output_tokens, s.finish_reason] for s in result.steps],
        right={2, 3, 4, 5, 6, 7},
    )
    if trace.has_timings is False:
        print(f"the original {trace.format} trace records no timings: its TTFT and e2e are shown as '-'")
    if result.skipped:
        print(f"{len(result.skipped)} LLM call(s) skipped: the trace kept no input for them")
