"""Benchmark: the torch backend vs transformers `generate` on SmolLM2-135M, fp32, CPU.

Run: PYTHONPATH=. python tests/perf/bench_torch_cpu.py [--requests 64] [--skip mixed,batch1,prefix,gemm]
(`--only gemm`: the GEMM section alone: one decoder stack's GEMMs on SmolLM2's shapes, MKL's sgemm
through F.linear vs oneDNN on weights prepacked once vs the C++ panel GEMM the engine runs in fp32)
Prints one JSON object. Baselines run in the same process, so only the ratios mean much on a
shared machine."""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

import torch

from engine import Engine, SamplingParams
from engine.model_source import ModelSpec, embedded_model_path
from engine.torch.weights import model_dir


def hf_model():
    from transformers import AutoModelForCausalLM

    # the same dequantized weights the engine uses (transformers' own GGUF conversion, cached)
    folder = model_dir(ModelSpec("smollm2-135m", "gguf", str(embedded_model_path())))
    return AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()


def workload(n: int, seed: int = 0) -> list[tuple[list[int], int]]:
    rng = random.Random(seed)
    return [([rng.randrange(100, 49000) for _ in range(rng.randint(32, 512))], rng.randint(16, 256))
            for _ in range(n)]


def bench_mixed(engine: Engine, hf, n: int) -> dict:
    reqs = workload(n)
    useful = sum(out for _, out in reqs)
    t0 = time.perf_counter()
    handles = [engine.submit("", SamplingParams(max_tokens=o, temperature=0, ignore_eos=True), prompt_token_ids=p)
               for p, o in reqs]
    results = [h.result() for h in handles]
    engine_s = time.perf_counter() - t0
    assert sum(len(r.token_ids) for r in results) == useful
    t0 = time.perf_counter()
    for i in range(0, n, 16):  # static batches of 16, left-padded, run to the longest output
        batch = reqs[i : i + 16]
        width = max(len(p) for p, _ in batch)
        ids = torch.tensor([[0] * (width - len(p)) + p for p, _ in batch])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p, _ in batch])
        new = max(o for _, o in batch)
        with torch.inference_mode():
            hf.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                        pad_token_id=0)
    hf_s = time.perf_counter() - t0
    return {
        "requests": n, "output_tokens": useful,
        "engine_tok_s": useful / engine_s, "hf_generate_b16_tok_s": useful / hf_s,
        "speedup": hf_s / engine_s, "target": 2.5,
    }


def bench_batch1(engine: Engine, hf, new: int = 128, rounds: int = 3) -> dict:
    """Decode tok/s at batch 1 after a warm-up of both, `rounds` interleaved runs, medians."""
    prompt = engine.backend.render_prompt("Write a long story about a lighthouse keeper and the sea.")
    ids = torch.tensor([prompt])

    def engine_run(n: int) -> float:
        r = engine.submit("", SamplingParams(max_tokens=n, temperature=0, ignore_eos=True), prompt_token_ids=prompt).result()
        return 1 / r.metrics.tpot_s

    def hf_run(n: int) -> float:
        times = {}
        for k in (1, n):
            t0 = time.perf_counter()
            with torch.inference_mode():
                hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=k, min_new_tokens=k, do_sample=False)
            times[k] = time.perf_counter() - t0
        return (n - 1) / (times[n] - times[1])

    engine_run(8), hf_run(8)  # warm-up: first-call allocations and kernel selection
    eng, ref = [], []
    for _ in range(rounds):
        eng.append(engine_run(new))
        ref.append(hf_run(new))
    e, h = statistics.median(eng), statistics.median(ref)
    return {"engine_decode_tok_s": e, "hf_generate_decode_tok_s": h, "speedup": e / h, "target": 1.3,
            "engine_runs": eng, "hf_runs": ref}


def chat_turns(engine: Engine, turns: int) -> list[dict]:
    words = "the keeper of the lighthouse wrote down the weather, the ships and the tides each day".split()
    rng = random.Random(1)
    system = " ".join(f"{rng.choice(words)} {i}." if i % 7 == 0 else rng.choice(words) for i in range(1500))
    messages = [{"role": "system", "content": system}]
    rows = []
    for t in range(turns):
        messages.append({"role": "user", "content": f"Question {t}: what happened on day {t * 3}?"})
        r = engine.generate(messages, SamplingParams(max_tokens=32, temperature=0))[0]
        messages.append({"role": "assistant", "content": r.text})
        m = r.metrics
        rows.append({"turn": t + 1, "prompt_tokens": m.prompt_tokens, "cached_prompt_tokens": m.cached_prompt_tokens,
                     "cached_fraction": m.cached_prompt_tokens / m.prompt_tokens, "ttft_ms": m.ttft_s * 1e3})
    return rows


def bench_prefix(engine: Engine, engine_off: Engine, turns: int = 20) -> dict:
    on = chat_turns(engine, turns)
    off = chat_turns(engine_off, 4)
    later = on[1:]
    return {
        "system_prompt_tokens": on[0]["prompt_tokens"],
        "min_cached_fraction_from_turn_2": min(r["cached_fraction"] for r in later),
        "ttft_ms_turn_1": on[0]["ttft_ms"],
        "mean_ttft_ms_turns_2_on": statistics.fmean(r["ttft_ms"] for r in later),
        "mean_ttft_ms_turns_2_4_prefix_cache_off": statistics.fmean(r["ttft_ms"] for r in off[1:]),
        "hit_rate": engine.stats()["prefix_cache_hit_rate"],
        "turns": on,
    }


def bench_gemm(rounds: int = 5) -> dict:
    """Every linear of SmolLM2-135M's 30 layers plus the LM head, distinct weights per layer (so
    they stream from memory as in a real step, not from cache), at 1, 16, 64 and 1,024 rows: F.linear
    (MKL sgemm), oneDNN on weights prepacked once, and the C++ panel GEMM on its own panels, all
    through the engine's own _linear. Medians of `rounds`, the three interleaved; fp32 throughout."""
    from engine.torch.cpu_kernels import PanelWeight, panel_gemm_available
    from engine.torch.llama import _linear, onednn_packing_available

    shapes = [(960, 576), (576, 576), (3072, 576), (576, 1536)]
    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(n, k, generator=gen) * 0.02 for _ in range(30) for n, k in shapes]
    weights.append(torch.randn(49152, 576, generator=gen) * 0.02)
    variants = {"mkl_sgemm": [None] * len(weights)}
    if onednn_packing_available(weights[0]):
        variants["onednn_packed"] = [torch.ops.mkldnn._reorder_linear_weight(w, None) for w in weights]
    if panel_gemm_available():
        variants["panel"] = [PanelWeight(w) for w in weights]
    out = {}
    for rows in (1, 16, 64, 1024):
        xs = {k: torch.randn(rows, k, generator=gen) for k in (576, 1536)}

        def timed(packs) -> float:
            t = time.perf_counter()
            for w, p in zip(weights, packs):
                _linear(xs[w.shape[1]], w, None, p)
            return time.perf_counter() - t

        times = {name: [] for name in variants}
        for packs in variants.values():
            timed(packs)
        for _ in range(rounds if rows < 1024 else max(2, rounds // 2)):
            for name, packs in variants.items():
                times[name].append(timed(packs))
        flops = 2 * rows * sum(w.numel() for w in weights)
        cell = {}
        for name, ts in times.items():
            ms = statistics.median(ts) * 1e3
            cell[f"{name}_ms"] = round(ms, 2)
            cell[f"{name}_gflops"] = round(flops / ms / 1e6, 1)
        base = cell["mkl_sgemm_ms"]
        for name in variants:
            if name != "mkl_sgemm":
                cell[f"{name}_vs_mkl"] = round(cell[f"{name}_ms"] / base, 3)
        if "panel" in variants and "onednn_packed" in variants:
            cell["panel_vs_onednn"] = round(cell["panel_ms"] / cell["onednn_packed_ms"], 3)
        out[f"rows_{rows}"] = cell
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--skip", default="")
    ap.add_argument("--only", default="", help="run only these sections (comma-separated)")
    args = ap.parse_args()
    sections = {"batch1", "mixed", "prefix", "gemm"}
    skip = set(filter(None, args.skip.split(","))) | (sections - set(filter(None, args.only.split(","))) if args.only else set())
    out: dict = {"threads": torch.get_num_threads(), "load_avg": os.getloadavg(), "note": "load_avg above 1 means other processes shared the CPU: compare ratios"}
    if "gemm" not in skip:
        out["gemm"] = bench_gemm()
        print(json.dumps({"gemm": out["gemm"]}), file=sys.stderr, flush=True)
    if not sections - skip - {"gemm"}:
        print(json.dumps(out, indent=2))
        return
    engine = Engine.load("smollm2-135m", backend="torch", speculation="off")  # the engine alone, no drafting
    out["memory_bandwidth_gbps"] = engine.stats()["memory_bandwidth_gbps"]
    hf = hf_model() if {"mixed", "batch1"} - skip else None
    if "batch1" not in skip:
        out["batch1_decode"] = bench_batch1(engine, hf)
        out["batch1_decode"]["roofline_fraction"] = engine.stats()["roofline_fraction"]
        print(json.dumps({"batch1_decode": out["batch1_decode"]}), file=sys.stderr, flush=True)
    if "mixed" not in skip:
        out["mixed"] = bench_mixed(engine, hf, args.requests)
        print(json.dumps({"mixed": out["mixed"]}), file=sys.stderr, flush=True)
    if "prefix" not in skip:
        off = Engine.load("smollm2-135m", backend="torch", enable_prefix_caching=False, measure_bandwidth=False)
        out["prefix_chat"] = bench_prefix(engine, off)
        off.close()
    engine.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
