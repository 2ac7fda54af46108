"""`workbench chat`: one turn with the model, streamed to stdout and recorded as a session."""
from __future__ import annotations

import argparse
import sys


def register(sub, common) -> None:
    p = sub.add_parser("chat", parents=[common], help="one chat turn, streamed and recorded as a session")
    p.add_argument("--prompt", required=True, metavar="TEXT", help="the user message ('-' reads it from stdin)")
    p.add_argument("--system", metavar="TEXT", default=None, help="system prompt (default from config)")
    p.add_argument("--max-tokens", type=int, default=None, metavar="N")
    p.add_argument("--temperature", type=float, default=None, metavar="T")
    p.add_argument("--top-p", type=float, default=None, metavar="P")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    p.add_argument("--otlp-endpoint", default=None, metavar="URL",
                   help="send the request's span to this OTLP/HTTP collector, e.g. http://127.0.0.1:4318/v1/traces")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from workbench.cli import CliError
    from workbench.context import config_for

    cfg = config_for(args)["chat"]
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise CliError("empty prompt: give some text with --prompt (or on stdin with --prompt -)")
    system = cfg["system_prompt"] if args.system is None else args.system

    from engine import SamplingParams

    params = SamplingParams(
        max_tokens=args.max_tokens if args.max_tokens is not None else cfg["max_tokens"],
        temperature=args.temperature if args.temperature is not None else cfg["temperature"],
        top_p=args.top_p if args.top_p is not None else cfg["top_p"],
        seed=args.seed,
    )
    # DuckDB is imported and opened only after the first token (the recorder queues until then):
    # its import competed with llama.cpp's for the GIL and cost a tenth of a second of cold start.
    # A file held by another process is still refused up front, before the model loads.
    from sessions.store import check_not_locked
    from workbench.context import db_path, engine_for, open_store

    check_not_locked(db_path(args))
    engine = engine_for(args)
    tracer = None
    try:
        if args.otlp_endpoint:
            from workbench.telemetry import LiveSpans

            tracer = LiveSpans(args.otlp_endpoint, service="workbench chat", model=engine.model_name,
                               backend=engine.backend_name)
            engine.add_listener(tracer.on_event)
        return _chat(args, engine, lambda: open_store(args), prompt, system, params)
    finally:
        engine.close()
        if tracer is not None:
            tracer.close()


def _chat(args, engine, open_store, prompt: str, system: str, params) -> int:
    from sessions.recorder import Recorder
    from workbench.services import start_session

    recorder = Recorder(open_store, autostart=False)
    engine.add_listener(recorder.on_event)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    sid = start_session(recorder, engine, prompt, system)
    recorder.add_message(sid, "user", prompt)
    handle = None
    interrupted = False
    try:
        handle = engine.submit(messages, params, tags={"session_id": sid, "assistant_message": True})
        for ev in handle:
            if not args.json and ev.text:
                sys.stdout.write(ev.text)
                sys.stdout.flush()
            recorder.start()  # after the first token; a no-op later
    except KeyboardInterrupt:
        interrupted = True
        if handle is not None:
            handle.cancel()
    result = handle.result(timeout=30) if handle is not None else None
    engine.remove_listener(recorder.on_event)
    try:
        recorder.flush()
    finally:
        recorder.close()
        if recorder.store is not None:
            recorder.store.close()
    if result is None:
        return 130
    m = result.metrics.to_dict()
    if args.json:
        from workbench.context import print_json

        print_json({
            "session_id": sid,
            "request_id": result.request_id,
            "model": engine.model_name,
            "backend": engine.backend_name,
            "text": result.text,
            "finish_reason": result.finish_reason,
            "error": result.error,
            "metrics": m,
        })
    else:
        sys.stdout.write("\n")
        sys.stdout.flush()
        tps = m["output_tokens_per_s"]
        print(
            f"[{result.finish_reason}] ttft {_f(m['ttft_ms'])} ms · tpot {_f(m['tpot_ms'])} ms · "
            f"{m['output_tokens']} tokens · {_f(tps)} tok/s · session {sid}",
            file=sys.stderr,
        )
    if result.finish_reason == "error":
        print(f"workbench: error: {result.error}", file=sys.stderr)
        return 2
    if interrupted:
        print("workbench: interrupted; the partial reply is saved", file=sys.stderr)
        return 130
    return 0


def _f(x) -> str:
    return "-" if x is None else f"{x:.1f}"
