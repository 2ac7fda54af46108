"""`workbench bench`: a load benchmark (workload x arrivals) against the local engine or any
OpenAI-compatible server; the run and every request are recorded, and a summary is printed."""
from __future__ import annotations

import argparse
import os
import sys

WORKLOADS_HELP = ("chat, mixed, code-edit, json, trace (replay a stored agent trace), or vLLM's datasets: "
                  "random, sharegpt, prefix-repetition")
DATASET_WORKLOADS = ("random", "sharegpt", "prefix-repetition")


def register(sub, common) -> None:
    p = sub.add_parser("bench", parents=[common], help="load benchmark: TTFT, ITL, TPOT, E2EL and throughput",
                       description="Run a load benchmark and record it. Ctrl+C stops it and keeps the finished requests.")
    p.add_argument("--workload", default="chat", metavar="NAME", help=WORKLOADS_HELP + " (default chat)")
    p.add_argument("--trace", metavar="TRACE_ID", default=None, help="with --workload trace: which stored trace")
    p.add_argument("--requests", type=int, default=16, metavar="N", help="number of requests (default 16)")
    arrivals = p.add_mutually_exclusive_group()
    arrivals.add_argument("--concurrency", type=int, default=None, metavar="C", help="keep C requests in flight (default 1)")
    arrivals.add_argument("--rate", type=float, default=None, metavar="R", help="Poisson arrivals, R requests per second")
    p.add_argument("--max-tokens", type=int, default=64, metavar="N", help="output tokens per request (default 64)")
    p.add_argument("--temperature", type=float, default=0.0, metavar="T")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ignore-eos", action="store_true", help="always generate --max-tokens tokens")
    p.add_argument("--base-url", metavar="URL", default=None, help="with --backend openai: e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key-env", metavar="NAME", default=None, help="with --backend openai: env var holding the API key")
    p.add_argument("--endpoint", choices=["chat", "completions"], default="chat", help="with --backend openai (default chat)")
    p.add_argument("--json", action="store_true", help="print the run's report JSON (as `report --format json`)")
    d = p.add_argument_group("vLLM datasets (as `vllm bench serve --dataset-name ...`)")
    d.add_argument("--tokenizer", metavar="MODEL", default=None,
                   help="tokenizer that makes and counts the tokens (default: --model, else smollm2-135m)")
    d.add_argument("--dataset-path", metavar="FILE", default=None, help="with --workload sharegpt: ShareGPT JSON")
    d.add_argument("--input-len", type=int, default=1024, metavar="N", help="random: input tokens (default 1024)")
    d.add_argument("--output-len", type=int, default=None, metavar="N",
                   help="random, prefix-repetition: output tokens (default --max-tokens); sharegpt: fixed output length")
    d.add_argument("--range-ratio", type=float, default=0.0, metavar="R", help="random: lengths uniform in ±R (default 0)")
    d.add_argument("--prefix-len", type=int, default=0, metavar="N",
                   help="random: a shared prefix (default 0); prefix-repetition: prefix tokens (default 256)")
    d.add_argument("--suffix-len", type=int, default=256, metavar="N", help="prefix-repetition: suffix tokens")
    d.add_argument("--num-prefixes", type=int, default=10, metavar="N", help="prefix-repetition: distinct prefixes")
    p.set_defaults(func=run)


def _engine(args: argparse.Namespace):
    from workbench.cli import CliError
    from workbench.context import backend_name, config_for, engine_for

    if backend_name(args) != "openai":
        if args.base_url or args.api_key_env:
            raise CliError("--base-url and --api-key-env need --backend openai")
        return engine_for(args)
    if not args.base_url:
        raise CliError("--backend openai needs --base-url, e.g. http://127.0.0.1:8000/v1")
    # only an explicit --model; otherwise the server's first listed model, as vllm bench serve does
    return remote_engine(config_for(args), args.base_url, model=getattr(args, "model", None),
                         api_key_env=args.api_key_env, endpoint=args.endpoint, tokenizer=args.tokenizer)


def remote_engine(config: dict, base_url: str, *, model: str | None = None, api_key_env: str | None = None,
                  endpoint: str = "chat", tokenizer: str | None = None):
    """An engine on any OpenAI-compatible server, for `workbench bench --backend openai` and the
    app's Runs tab alike. `tokenizer` counts output tokens where a server sends no usage."""
    from workbench.cli import CliError
    from workbench.services import load_engine

    key = None
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise CliError(f"environment variable {api_key_env} is not set")
    counter = None
    if tokenizer:
        from engine.tokenizer import token_counter

        counter = token_counter(tokenizer)
    return load_engine(config, model=model, backend="openai", base_url=base_url, api_key=key,
                       endpoint=endpoint, tokenizer=counter)


def bench_config(*, workload: str, requests: int, concurrency: int | None = None, rate: float | None = None,
                 max_tokens: int = 64, temperature: float = 0.0, seed: int = 0, ignore_eos: bool = False,
                 trace: str | None = None, base_url: str | None = None, endpoint: str = "chat"):
    """The checked BenchConfig of a run, from the CLI's options or the app's form (one place, so
    both name workloads and record remote runs the same way)."""
    from sessions.bench import BenchConfig

    dashed = workload.replace("_", "-")
    workload = dashed if dashed in DATASET_WORKLOADS else workload
    cfg = BenchConfig(workload=workload, num_requests=requests, concurrency=concurrency, request_rate=rate,
                      max_tokens=max_tokens, temperature=temperature, seed=seed, ignore_eos=ignore_eos,
                      trace_id=trace, base_url=base_url, extra={"endpoint": endpoint} if base_url else {})
    cfg.check()
    return cfg


def _dataset_options(args: argparse.Namespace, engine) -> dict:
    """The tokenizer is --tokenizer, else the model's own (a remote model name must be local too:
    `vllm serve PATH` lists PATH)."""
    from engine.tokenizer import load_tokenizer

    name = args.tokenizer or (engine.spec.name if engine.spec is not None else engine.model_name)
    return {"tokenizer": load_tokenizer(name), "dataset_path": args.dataset_path, "input_len": args.input_len,
            "output_len": args.output_len, "range_ratio": args.range_ratio, "prefix_len": args.prefix_len,
            "suffix_len": args.suffix_len, "num_prefixes": args.num_prefixes, "tokenizer_name": name}


def bench_progress():
    """run_bench's progress callback: requests done and in flight, on one redrawn line."""
    from workbench.progress import ProgressLine

    line = ProgressLine()

    def show(finished: int, submitted: int, total: int) -> None:
        rate = finished / line.elapsed if line.elapsed > 0 else 0.0
        line.draw(finished, total, after=f" {finished}/{total} done, {submitted - finished} in flight, {rate:.1f} req/s")

    show.close = line.close
    return show


def run(args: argparse.Namespace) -> int:
    cfg = bench_config(workload=args.workload, requests=args.requests, concurrency=args.concurrency, rate=args.rate,
                       max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed,
                       ignore_eos=args.ignore_eos, trace=args.trace, base_url=args.base_url, endpoint=args.endpoint)
    workload = cfg.workload
    from workbench.context import open_store

    store = open_store(args)
    try:
        engine = _engine(args)
    except BaseException:
        store.close()
        raise
    bar = bench_progress()
    try:
        if workload in DATASET_WORKLOADS:
            cfg.dataset = _dataset_options(args, engine)
        from sessions.bench import run_bench

        outcome = run_bench(engine, store, cfg, progress=bar)
        bar.close()
        from sessions.report import build_report

        report = build_report(store, outcome.run_id)
    finally:
        engine.close()
        store.close()
    from workbench.context import emit

    emit(args, report, print_summary)
    if outcome.status == "interrupted":
        print(f"workbench: interrupted; {outcome.completed} finished requests kept in run {outcome.run_id}", file=sys.stderr)
        return 130
    return 0


def print_summary(r: dict) -> None:
    """The shape of `vllm bench serve`'s result block."""
    def line(label: str, value) -> None:
        v = "n/a" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))
        print(f"{label:<40}{v:>12}")

    print(f"{' Benchmark Result ':=^52}")
    line("Run id:", r["run_id"])
    line("Backend / model:", f"{r.get('backend')} / {r.get('model_id')}")
    line("Successful requests:", r["completed"])
    line("Failed requests:", r["failed"])
    line("Benchmark duration (s):", r["duration"])
    line("Total input tokens:", r["total_input_tokens"])
    line("Total generated tokens:", r["total_output_tokens"])
    line("Request throughput (req/s):", r["request_throughput"])
    line("Output token throughput (tok/s):", r["output_throughput"])
    line("Total token throughput (tok/s):", r["total_token_throughput"])
    for m, title in (("ttft", "Time to First Token"), ("tpot", "Time per Output Token (excl. 1st token)"),
                     ("itl", "Inter-token Latency"), ("e2el", "End-to-end Latency")):
        print(f"{' ' + title + ' ':-^52}")
        line(f"Mean {m.upper()} (ms):", r[f"mean_{m}_ms"])
        line(f"Median {m.upper()} (ms):", r[f"median_{m}_ms"])
        for q in (90, 95, 99):
            line(f"P{q} {m.upper()} (ms):", r[f"p{q}_{m}_ms"])
    print("=" * 52)
