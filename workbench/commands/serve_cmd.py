"""`workbench serve`: the local engine behind an OpenAI-compatible HTTP API; every request is
recorded as a session of kind "serve". Stops cleanly on Ctrl+C or SIGTERM."""
from __future__ import annotations

import argparse
import signal
import sys


def register(sub, common) -> None:
    p = sub.add_parser("serve", parents=[common], help="OpenAI-compatible server: /v1/chat/completions, /v1/completions, /v1/models")
    p.add_argument("--host", default=None, help="address to listen on (default from config: 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default from config: 8000; 0 picks a free one)")
    p.add_argument("--max-queue", type=int, default=None, metavar="N",
                   help="requests queued or running before new ones get 429 (default from config: 64)")
    p.set_defaults(func=run)


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


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
    store = open_store(args)
    try:
        engine = engine_for(args)
    except BaseException:
        store.close()
        raise
    from sessions.recorder import Recorder
    from workbench.serve import make_server

    recorder = Recorder(store, record_steps=False)  # steps of a shared engine belong to no one session
    engine.add_listener(recorder.on_event)
    server = None
    try:
        server = make_server(engine, recorder, host, port, max_queue=max_queue, default_max_tokens=cfg["max_tokens"])
        h, p = server.server_address[:2]
        print(f"workbench serve: listening on http://{h}:{p}/v1 (model {engine.model_name}, backend "
              f"{engine.backend_name}, max queue {max_queue})", file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, _stop)
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            print("workbench serve: stopping", file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.server_close()
        engine.close()  # cancels what is in flight; the recorder keeps what was produced
        try:
            recorder.flush()
        finally:
            recorder.close()
            store.close()
    return 0
