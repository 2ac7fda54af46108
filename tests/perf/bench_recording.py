"""Recording cost: output tokens/s with the DuckDB recorder listening vs not, on the same
engine, runs interleaved. Prints JSON; goal ratio (on/off) >= 0.98.

    python tests/perf/bench_recording.py [--rounds 6] [--max-tokens 256]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine import Engine, SamplingParams  # noqa: E402
from sessions import Recorder, Store  # noqa: E402

PROMPT = "Write a detailed essay about the history of printing."


def tok_per_s(engine: Engine, params: SamplingParams, tags=None) -> float:
    h = engine.submit(PROMPT, params, tags=tags)
    r = h.result()
    m = r.metrics
    return (m.output_tokens - 1) / ((m.token_times_ns[-1] - m.first_token_ns) / 1e9)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=256)
    args = ap.parse_args()
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0, ignore_eos=True)
    engine = Engine.load("smollm2-135m", backend="llamacpp")
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "rec.duckdb")
        rec = Recorder(store)
        sid = rec.new_session("bench")
        tok_per_s(engine, params)  # warm-up
        on, off = [], []
        for _ in range(args.rounds):
            off.append(tok_per_s(engine, params))
            engine.add_listener(rec.on_event)
            on.append(tok_per_s(engine, params, {"session_id": sid}))
            engine.remove_listener(rec.on_event)
        rec.flush()
        rows = store.execute("SELECT count(*) FROM token_events").fetchone()[0]
        rec.close()
        store.close()
    engine.close()
    print(json.dumps({
        "tokens_per_s_recorder_off": statistics.median(off),
        "tokens_per_s_recorder_on": statistics.median(on),
        "ratio_on_over_off": statistics.median(on) / statistics.median(off),
        "token_rows_written": rows,
        "goal_ratio": 0.98,
        "runs_off": off,
        "runs_on": on,
    }, indent=2))


if __name__ == "__main__":
    main()
