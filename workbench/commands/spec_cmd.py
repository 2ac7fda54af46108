"""`workbench spec`: where speculative decoding pays on your model: `spec sweep` runs workloads x batch
sizes x speculation modes as recorded bench runs; `spec llamacpp-ab` measures llama.cpp prompt lookup."""
from __future__ import annotations

import argparse
import sys


def register(sub, common) -> None:
    p = sub.add_parser("spec", parents=[common], help="speculative decoding: sweep where it pays, llama.cpp A/B")
    sp = p.add_subparsers(title="spec commands", metavar="SUBCOMMAND")
    s = sp.add_parser("sweep", parents=[common], help="workloads x batch sizes x speculation, stored as bench runs")
    add_sweep_options(s)
    s.set_defaults(func=run_sweep_cmd)
    ab = sp.add_parser("llamacpp-ab", parents=[common],
                       help="measure llama.cpp prompt-lookup decoding vs plain decoding; cached for the llamacpp backend")
    ab.add_argument("--max-tokens", type=int, default=128, metavar="N")
    ab.add_argument("--json", action="store_true")
    ab.set_defaults(func=run_llamacpp_ab)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def add_sweep_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--workloads", default="chat,code-edit,json", metavar="LIST", help="comma-separated (default chat,code-edit,json)")
    s.add_argument("--workload-set", default=None, metavar="NAME",
                   help="instead of --workloads: builtin, public-tune or public-report (public prompts, "
                        "sessions/data/public/SOURCES.md; tune on one half, report the other)")
    s.add_argument("--batch-sizes", default="1,8,32", metavar="LIST", help="requests in flight (default 1,8,32)")
    s.add_argument("--modes", default="off,ngram,draft,auto", metavar="LIST",
                   help="speculation modes (default off,ngram,draft,auto; draft = self-speculation without --draft)")
    s.add_argument("--draft", metavar="MODEL", default=None, help="draft model with the target's tokenizer")
    s.add_argument("--requests-per-slot", type=int, default=2, metavar="N", help="requests per cell = batch size x N (default 2)")
    s.add_argument("--min-requests", type=int, default=0, metavar="N",
                   help="at least N requests a cell, whatever the batch size (default 0)")
    s.add_argument("--max-tokens", type=int, default=64, metavar="N")
    s.add_argument("--repeats", type=int, default=1, metavar="N",
                   help="run each workload x batch N times, modes interleaved; cells report the median (default 1)")
    s.add_argument("--quick", action="store_true", help="a small grid (batch 1,2; 1 request per slot; 12 tokens)")
    s.add_argument("--json", action="store_true", help="print the cells and crossovers as JSON")


def _ints(text: str, what: str) -> tuple[int, ...]:
    from workbench.cli import CliError

    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise CliError(f"--{what} takes comma-separated integers, e.g. 1,8,32") from None


def run_sweep_cmd(args: argparse.Namespace) -> int:
    from sessions.spec_sweep import SweepConfig, run_sweep, workload_set
    from workbench.cli import CliError
    from workbench.context import backend_name, emit, engine_for, open_store

    workloads = (workload_set(args.workload_set) if args.workload_set
                 else tuple(w.strip() for w in args.workloads.split(",") if w.strip()))
    cfg = SweepConfig(workloads, _ints(args.batch_sizes, "batch-sizes"),
                      tuple(m.strip() for m in args.modes.split(",") if m.strip()),
                      args.requests_per_slot, args.max_tokens, repeats=args.repeats, min_requests=args.min_requests)
    if args.quick:
        cfg.batch_sizes, cfg.requests_per_slot, cfg.max_tokens = (1, 2), 1, 12
    cfg.check()
    if backend_name(args) not in ("auto", "torch"):
        raise CliError("the speculation sweep runs on the torch backend (--backend torch)")
    store = open_store(args)
    try:
        engine = engine_for(args, backend="torch", speculation="off", draft=args.draft)
        try:
            res = run_sweep(engine, store, cfg, progress=lambda m: print(f"… {m}", file=sys.stderr, flush=True))
        finally:
            engine.close()
    finally:
        store.close()
    return emit(args, res.to_dict(), print_sweep)


def print_sweep(d: dict) -> None:
    cells = d["cells"]
    print(f"speculation sweep {d['sweep_id']}: speedup vs off (output tokens/s), per workload and batch size")
    modes = list(dict.fromkeys(c["speculation"] for c in cells))
    for w, cross in d["crossover"].items():
        print(f"\n{w}")
        print(f"{'batch':>6} " + " ".join(f"{m:>14}" for m in modes))
        for b in sorted({c["batch_size"] for c in cells if c["workload"] == w}):
            row = {c["speculation"]: c for c in cells if c["workload"] == w and c["batch_size"] == b}
            def fmt(c):
                if c is None or c["output_throughput"] is None:
                    return f"{'-':>14}"
                if c["speculation"] == "off":
                    return f"{c['output_throughput']:>8.1f} tok/s"
                mark = "" if c["identical_to_off"] in (True, None) else "!"
                acc = "" if c["acceptance_rate"] is None else f" a{c['acceptance_rate']:.2f}"
                return f"{(c['speedup'] or 0):>6.2f}x{acc:>6}{mark:1}"
            print(f"{b:>6} " + " ".join(fmt(row.get(m)) for m in modes))
        cb = cross["crossover_batch_size"]
        print(f"crossover: {'speculation pays at every batch size measured' if cb is None else f'stops paying at batch {cb}'}"
              f" (best fixed-mode speedup by batch: "
              + ", ".join(f"{b}: {'-' if v is None else f'{v:.2f}x'}" for b, v in cross["best_fixed_speedup_by_batch"].items()) + ")")


def run_llamacpp_ab(args: argparse.Namespace) -> int:
    from engine.backends.llamacpp_spec import measure_prompt_lookup
    from workbench.context import emit, model_name

    return emit(args, measure_prompt_lookup(model_name(args), max_tokens=args.max_tokens), _print_ab)


def _print_ab(res: dict) -> None:
    print(f"llama.cpp on {res['model']}: plain {res['plain_tok_s']:.1f} tok/s, prompt lookup "
          f"{res['prompt_lookup_tok_s']:.1f} tok/s ({res['speedup']:.2f}x); same greedy output: {res['identical']}")
    print(f"cached in {res['cache_file']}; the llamacpp backend's auto speculation reads it")
