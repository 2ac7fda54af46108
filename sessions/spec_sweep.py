"""Where speculative decoding pays: a grid of workloads x batch sizes x speculation modes, each cell a
recorded bench run, with speedup over speculation off and the crossover batch size per workload."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from engine import Engine, RequestFinished
from sessions.bench import BenchConfig, run_bench
from sessions.errors import SessionsError
from sessions.recorder import insert_many
from sessions.store import Store

SWEEP_WORKLOADS = ("chat", "code-edit", "json")
SWEEP_BATCHES = (1, 8, 32)
SWEEP_MODES = ("off", "ngram", "draft", "auto")
# public prompts (sessions/data/public/spec_prompts.jsonl): tune the policy on one half, quote the other
WORKLOAD_SETS = {
    "builtin": SWEEP_WORKLOADS,
    "public-tune": ("public-code-tune", "public-chat-tune"),
    "public-report": ("public-code-report", "public-chat-report"),
}


def workload_set(name: str) -> tuple[str, ...]:
    try:
        return WORKLOAD_SETS[name]
    except KeyError:
        raise SessionsError(f"unknown workload set {name!r}: choose one of {', '.join(WORKLOAD_SETS)}") from None


@dataclass(slots=True)
class SweepConfig:
    workloads: tuple[str, ...] = SWEEP_WORKLOADS
    batch_sizes: tuple[int, ...] = SWEEP_BATCHES
    modes: tuple[str, ...] = SWEEP_MODES
    requests_per_slot: int = 2  # each cell runs batch_size x this many requests
    max_tokens: int = 64
    seed: int = 0
    # each (workload, batch) runs its modes this many times, interleaved (off, ngram, auto, off, ...);
    # a cell's throughput is the median: on a shared machine one run apiece cannot show 3%
    repeats: int = 1
    min_requests: int = 0  # at least this many requests a cell (small batches otherwise see few prompts)

    def check(self) -> None:
        if "off" not in self.modes:
            raise SessionsError("a speculation sweep needs the 'off' mode: speedups are measured against it")
        if any(b < 1 for b in self.batch_sizes) or min(self.requests_per_slot, self.max_tokens, self.repeats) < 1:
            raise SessionsError("batch sizes, --requests-per-slot, --max-tokens and --repeats must be at least 1")


@dataclass(slots=True)
class Cell:
    workload: str
    batch_size: int
    speculation: str
    run_id: str
    output_throughput: float | None
    spec_draft_tokens: int = 0
    spec_accepted_tokens: int = 0
    spec_verify_steps: int = 0
    identical_to_off: bool | None = None
    policy_reason: str | None = None
    speedup: float | None = None
    throughputs: list[float] = field(default_factory=list)  # every repeat's, in run order
    # process CPU seconds per output token (engine thread included), median over repeats: other
    # processes on a shared machine stretch wall time, much less the CPU time this one spends
    cpu_ms_per_token: float | None = None
    cpu_ms_per_tokens: list[float] = field(default_factory=list)
    cpu_ratio: float | None = None  # off's CPU time per token / this cell's (above 1: cheaper than off)

    @property
    def acceptance_rate(self) -> float | None:
        return self.spec_accepted_tokens / self.spec_draft_tokens if self.spec_draft_tokens else None


@dataclass(slots=True)
class SweepResult:
    sweep_id: str
    cells: list[Cell] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"sweep_id": self.sweep_id, "cells": [_cell_dict(c) for c in self.cells],
                "crossover": crossover(self.cells)}


def _cell_dict(c: Cell) -> dict[str, Any]:
    return {"workload": c.workload, "batch_size": c.batch_size, "speculation": c.speculation, "run_id": c.run_id,
            "output_throughput": c.output_throughput, "speedup": c.speedup, "spec_draft_tokens": c.spec_draft_tokens,
            "spec_accepted_tokens": c.spec_accepted_tokens, "acceptance_rate": c.acceptance_rate,
            "identical_to_off": c.identical_to_off, "policy_reason": c.policy_reason,
            "throughputs": c.throughputs, "cpu_ms_per_token": c.cpu_ms_per_token, "cpu_ratio": c.cpu_ratio,
            "cpu_ms_per_tokens": c.cpu_ms_per_tokens}


def crossover(cells: list[Cell]) -> dict[str, dict[str, Any]]:
    """Per workload: the smallest batch size from which no fixed speculation mode (ngram, draft,
    self) beats off any more, with the speedups it came from; None when it pays at every size."""
    out: dict[str, dict[str, Any]] = {}
    for w in dict.fromkeys(c.workload for c in cells):
        by_batch: dict[int, dict[str, float | None]] = {}
        for c in cells:
            if c.workload == w and c.speculation != "off":
                by_batch.setdefault(c.batch_size, {})[c.speculation] = c.speedup
        best = {b: max((v for m, v in d.items() if m != "auto" and v is not None), default=None)
                for b, d in sorted(by_batch.items())}
        cross = None
        for b, v in best.items():
            if v is not None and v <= 1.0 and all(x is not None and x <= 1.0 for bb, x in best.items() if bb >= b):
                cross = b
                break
        out[w] = {"crossover_batch_size": cross, "best_fixed_speedup_by_batch": best,
                  "auto_speedup_by_batch": {b: d.get("auto") for b, d in sorted(by_batch.items())}}
    return out


Progress = Callable[[str], None]


def run_sweep(engine: Engine, store: Store, cfg: SweepConfig, progress: Progress | None = None) -> SweepResult:
    """Run every cell on one loaded engine (speculation switched between cells) and record it."""
    cfg.check()
    backend = engine.backend
    if not hasattr(backend, "set_speculation"):
        raise SessionsError(f"the {engine.backend_name} backend cannot switch speculation; use --backend torch")
    result = SweepResult(uuid.uuid4().hex[:12])
    engine.generate("Hello", _warm_params())  # first-call costs stay out of the first cell
    try:
        for w in cfg.workloads:
            for b in cfg.batch_sizes:
                runs: dict[str, list[tuple[Cell, list[list[int]]]]] = {m: [] for m in cfg.modes}
                for rep in range(cfg.repeats):
                    for mode in cfg.modes:
                        if progress:
                            progress(f"{w} batch {b} speculation {mode}"
                                     + (f" (repeat {rep + 1}/{cfg.repeats})" if cfg.repeats > 1 else ""))
                        runs[mode].append(_run_cell(engine, store, cfg, w, b, mode))
                cells = {m: _merge(r) for m, r in runs.items()}
                off = cells.get("off")
                off_tokens = runs["off"][0][1] if "off" in runs else None
                for mode, cell in cells.items():
                    if mode == "off":
                        cell.speedup = 1.0
                        cell.cpu_ratio = 1.0 if cell.cpu_ms_per_token else None
                    elif off is not None:
                        cell.identical_to_off = all(tokens == off_tokens for _, tokens in runs[mode])
                        if cell.output_throughput and off.output_throughput:
                            cell.speedup = cell.output_throughput / off.output_throughput
                        if cell.cpu_ms_per_token and off.cpu_ms_per_token:
                            cell.cpu_ratio = off.cpu_ms_per_token / cell.cpu_ms_per_token
                    result.cells.append(cell)
    finally:
        backend.set_speculation(getattr(backend, "speculation_mode", "off"))
        _store(store, result)
    return result


def _merge(runs: list[tuple[Cell, list[list[int]]]]) -> Cell:
    """One cell from its repeats: the median run's throughput and run id, summed draft counts."""
    cells = [c for c, _ in runs]
    ranked = sorted(cells, key=lambda c: c.output_throughput or 0.0)
    mid = ranked[(len(ranked) - 1) // 2]
    cpu = sorted(c.cpu_ms_per_token for c in cells if c.cpu_ms_per_token is not None)
    return Cell(mid.workload, mid.batch_size, mid.speculation, mid.run_id, mid.output_throughput,
                sum(c.spec_draft_tokens for c in cells), sum(c.spec_accepted_tokens for c in cells),
                sum(c.spec_verify_steps for c in cells), policy_reason=cells[-1].policy_reason,
                throughputs=[c.output_throughput or 0.0 for c in cells],
                cpu_ms_per_token=cpu[(len(cpu) - 1) // 2] if cpu else None,
                cpu_ms_per_tokens=[c.cpu_ms_per_token for c in cells if c.cpu_ms_per_token is not None])


def _warm_params():
    from engine import SamplingParams

    return SamplingParams(max_tokens=4, temperature=0)


def _run_cell(engine: Engine, store: Store, cfg: SweepConfig, workload: str, batch: int, mode: str):
    engine.backend.set_speculation(mode)
    finished: dict[str, Any] = {}

    def on_event(ev):
        if isinstance(ev, RequestFinished):
            finished[ev.request_id] = ev.result

    engine.add_listener(on_event)
    try:
        bc = BenchConfig(workload=workload, num_requests=max(batch * cfg.requests_per_slot, cfg.min_requests),
                         concurrency=batch, max_tokens=cfg.max_tokens, temperature=0.0, seed=cfg.seed,
                         extra={"speculation": mode})
        cpu0 = time.process_time()
        outcome = run_bench(engine, store, bc)
        cpu_s = time.process_time() - cpu0
    finally:
        engine.remove_listener(on_event)
    order = [r[0] for r in store.cursor().execute(
        "SELECT request_id FROM bench_requests WHERE run_id = ? ORDER BY seq", [outcome.run_id]).fetchall()]
    results = [finished[rid] for rid in order if rid in finished]
    summary = store.cursor().execute("SELECT summary->>'output_throughput' FROM bench_runs WHERE id = ?",
                                     [outcome.run_id]).fetchone()
    st = engine.stats()
    out_tokens = sum(len(r.token_ids) for r in results)
    cell = Cell(workload, batch, mode, outcome.run_id, float(summary[0]) if summary and summary[0] else None,
                sum(r.metrics.spec_draft_tokens for r in results), sum(r.metrics.spec_accepted_tokens for r in results),
                sum(r.metrics.spec_verify_steps for r in results), policy_reason=(st.get("speculation_last_decision") or st.get("speculation_reason")) if mode != "off" else None,
                cpu_ms_per_token=cpu_s * 1e3 / out_tokens if out_tokens else None)
    return cell, [r.token_ids for r in results]


def _store(store: Store, result: SweepResult) -> None:
    now = datetime.now(timezone.utc)
    rows = [(result.sweep_id, now, c.workload, c.batch_size, c.speculation, c.run_id, c.output_throughput, c.speedup,
             c.spec_draft_tokens, c.spec_accepted_tokens, c.acceptance_rate,
             1 + c.spec_accepted_tokens / c.spec_verify_steps if c.spec_verify_steps else None,
             c.identical_to_off, c.policy_reason) for c in result.cells]
    insert_many(store.cursor(), "spec_sweep_cells",
                ("sweep_id", "created_at", "workload", "batch_size", "speculation", "run_id", "output_throughput",
                 "speedup", "spec_draft_tokens", "spec_accepted_tokens", "acceptance_rate", "mean_accepted_length",
                 "identical_to_off", "policy_reason"), rows)


def load_sweep(store: Store, sweep_id: str | None = None) -> list[dict[str, Any]]:
    """Rows of a stored sweep (the latest when sweep_id is None), for the panel and `--json`."""
    cur = store.cursor()
    if sweep_id is None:
        row = cur.execute("SELECT sweep_id FROM spec_sweep_cells ORDER BY created_at DESC LIMIT 1").fetchone()
        if row is None:
            return []
        sweep_id = row[0]
    cur.execute("SELECT workload, batch_size, speculation, output_throughput, speedup, acceptance_rate,"
                " identical_to_off, policy_reason, run_id FROM spec_sweep_cells WHERE sweep_id = ?"
                " ORDER BY workload, batch_size, speculation", [sweep_id])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]
