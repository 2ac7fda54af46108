"""`workbench serve`: the local engine behind an OpenAI-compatible HTTP API (Starlette on uvicorn);
every request is recorded as a session of kind "serve". Stops cleanly on Ctrl+C or SIGTERM."""
from __future__ import annotations

import argparse
import os
import sys

API_KEY_ENV = "WORKBENCH_API_KEY"


def register(sub, common) -> None:
    p = sub.add_parser("serve", parents=[common],
                       help="OpenAI-compatible server: /v1/chat/completions, /v1/completions, /v1/embeddings, /metrics",
                       description="Serve the engine over HTTP. Bound to loopback by default; any other address "
                                   f"needs an API key (--api-key or ${API_KEY_ENV}) that clients send as a bearer token.")
    p.add_argument("--host", default=None, help="address to listen on (default from config: 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default from config: 8000; 0 picks a free one)")
    p.add_argument("--max-queue", type=int, default=None, metavar="N",
                   help="requests queued or running before new ones get 429 (default from config: 64)")
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help=f"require 'Authorization: Bearer KEY' on /v1/* (default: ${API_KEY_ENV})")
    p.add_argument("--otlp-endpoint", default=None, metavar="URL",
                   help="send a span per request to this OTLP/HTTP collector, e.g. http://127.0.0.1:4318/v1/traces")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from workbench.cli import CliError
    from workbench.context import config_for, engine_for, open_store

    cfg = config_for(args)["serve"]
    host = args.host or cfg["host"]
    port = cfg["port"] if args.port is None else args.port
    max_queue = args.max_queue or cfg["max_queue"]
    if not 0 <= port <= 65535:
        raise CliError(f"--port must be between 0 and 65535 (got {port})")
    if max_queue < 1:
        raise CliError(f"--max-queue must be at least 1 (got {max_queue})")
    api_key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV)
    if api_key is not None and not api_key.strip():
        raise CliError(f"the API key is empty: pass --api-key KEY or set {API_KEY_ENV} to a non-empty value")
    from workbench.serve import build_app, is_loopback, listen, run_server

    if not is_loopback(host) and not api_key:
        raise CliError(f"listening on {host} serves anyone who can reach it: pass --api-key KEY "
                       f"(or set {API_KEY_ENV}), or keep the default 127.0.0.1")
    sock = listen(host, port)  # before the model loads: a busy port fails at once
    tracer = None
    try:
        store = open_store(args)
    except BaseException:
        sock.close()
        raise
    try:
        engine = engine_for(args)
    except BaseException:
        sock.close()
        store.close()
        raise
    from sessions.recorder import Recorder
    from workbench.serve import ServeApp

    recorder = Recorder(store, record_steps=False)  # steps of a shared engine belong to no one session
    engine.add_listener(recorder.on_event)
    try:
        if args.otlp_endpoint:
            from workbench.telemetry import LiveSpans

            tracer = LiveSpans(args.otlp_endpoint, service="workbench serve", model=engine.model_name,
                               backend=engine.backend_name)
            engine.add_listener(tracer.on_event)
        app = ServeApp(engine, recorder, max_queue=max_queue, default_max_tokens=cfg["max_tokens"], api_key=api_key)
        h, p = sock.getsockname()[:2]
        print(f"workbench serve: listening on http://{h}:{p}/v1 (model {engine.model_name}, backend "
              f"{engine.backend_name}, max queue {max_queue}{', API key required' if api_key else ''})",
              file=sys.stderr, flush=True)
        run_server(build_app(app), sock)
        print("workbench serve: stopping", file=sys.stderr, flush=True)
    finally:
        sock.close()
        engine.close()  # cancels what is in flight; the recorder keeps what was produced
        if tracer is not None:
            tracer.close()
        try:
            recorder.flush()
        finally:
            recorder.close()
            store.close()
    return 0
