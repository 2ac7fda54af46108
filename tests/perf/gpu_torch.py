"""GPU benchmark of the torch backend, one command, one JSON object: a random-weight model of
Llama-3-8B's shape in bf16 (built from a config, nothing downloaded) —
- batch-1 decode vs the HBM roofline (copy bandwidth measured here) and vs transformers' `generate`
  with a static cache;
- 256 requests x (128 prompt, 128 output) vs transformers' continuous batching (`generate_batch`);
- speculation off / ngram / auto at batch 1, 8, 32, and self-speculation, which drafts whatever the
  model (a random model's output has few repeats for prompt lookup and accepts few drafts: these
  cells show what drafting and verifying cost and that auto backs off, not what a trained model gains);
- the cold start by stage.

Run: PYTHONPATH=. python tests/perf/gpu_torch.py [--small] [--skip-hf]
     PYTHONPATH=. python tests/perf/gpu_torch.py --cpu-smoke   (a tiny config on the CPU, the Triton
     kernels under the interpreter: the whole script end to end, so it does not first fail on a GPU)"""
from __future__ import annotations

import os
import sys

if "--cpu-smoke" in sys.argv:  # before anything imports triton
    os.environ.setdefault("TRITON_INTERPRET", "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from engine import Engine, SamplingParams  # noqa: E402
from engine.torch.backend import TorchBackend  # noqa: E402
from engine.torch.config import TorchConfig  # noqa: E402
from engine.torch.llama import ModelConfig  # noqa: E402
from engine.torch.roofline import measure_bandwidth_gbps  # noqa: E402

LLAMA3_8B = dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-5, rope_theta=500000.0,
                 max_position_embeddings=8192, tie_word_embeddings=False)
SMALL = {**LLAMA3_8B, "hidden_size": 1024, "intermediate_size": 3584, "num_hidden_layers": 8,
         "num_attention_heads": 8, "num_key_value_heads": 2}
TINY = {**LLAMA3_8B, "vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 256}


def sizes(args) -> dict:
    if args.cpu_smoke:
        return dict(requests=2, prompt=12, new=3, spec_batches=(2,), spec_new=4, max_model_len=128, max_num_seqs=8,
                    warmup=False)
    return dict(requests=args.requests, prompt=128, new=128, spec_batches=(1, 8, 32), spec_new=128,
                max_model_len=2048, max_num_seqs=256, warmup=True)


def requests(n: int, prompt: int, vocab: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, vocab - 10, (n, prompt), generator=g).tolist()


def repeating_requests(n: int, prompt: int, vocab: int, seed: int) -> list[list[int]]:
    """Prompts made of one segment said four times: prompt lookup finds drafts in them."""
    seg = requests(n, max(1, prompt // 4), vocab, seed)
    return [(s * 4)[:prompt] for s in seg]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hf_baselines(cfg_dict: dict, device: torch.device, sz: dict) -> dict:
    """transformers on the same shape and dtype: generate (static cache) at batch 1, generate_batch
    over all requests. Each timed on its second run (the first compiles and warms up)."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    hf_cfg = LlamaConfig(**{k: v for k, v in cfg_dict.items() if k != "model_type"})
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(hf_cfg).eval()
    finally:
        torch.set_default_dtype(torch.float32)
    out: dict = {}
    prompt, new, vocab = sz["prompt"], sz["new"], cfg_dict["vocab_size"]
    ids = torch.tensor(requests(1, prompt, vocab, seed=1), device=device)
    try:
        for _ in range(2):
            sync(device)
            t0 = time.perf_counter()
            with torch.inference_mode():
                model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                               do_sample=False, cache_implementation="static")
            sync(device)
            out["hf_generate_static_b1_tok_s"] = new / (time.perf_counter() - t0)
    except Exception as e:  # an API that differs across transformers versions: report it, go on
        out["hf_generate_static_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    try:
        gen_cfg = GenerationConfig(max_new_tokens=new, do_sample=False, eos_token_id=None)
        inputs = requests(sz["requests"], prompt, vocab)
        for _ in range(2):
            sync(device)
            t0 = time.perf_counter()
            with torch.inference_mode():
                done = model.generate_batch(inputs=inputs, generation_config=gen_cfg)
            sync(device)
            tokens = sum(len(r.generated_tokens) for r in done.values())
            out["hf_generate_batch_tok_s"] = tokens / (time.perf_counter() - t0)
            out["hf_generate_batch_tokens"] = tokens
    except Exception as e:
        out["hf_generate_batch_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def run_engine(engine: Engine, reqs: list[list[int]], new: int) -> tuple[float, list]:
    """Output tokens per second over all of reqs, submitted at once; and the results."""
    sp = SamplingParams(max_tokens=new, temperature=0, ignore_eos=True)
    t0 = time.perf_counter()
    handles = [engine.submit("", sp, prompt_token_ids=p) for p in reqs]
    results = [h.result(timeout=3600) for h in handles]
    return sum(len(r.token_ids) for r in results) / (time.perf_counter() - t0), results


def speculation_cells(engine: Engine, vocab: int, sz: dict) -> list[dict]:
    """off / ngram / auto at each batch size, interleaved per batch size, each after a warm-up run
    of its own mode; speedup against off at the same batch."""
    backend = engine.backend
    cells = []
    for b in sz["spec_batches"]:
        reqs = repeating_requests(b, sz["prompt"], vocab, seed=100 + b)
        base = None
        for mode in ("off", "ngram", "auto", "self"):
            # ngram_min=1: a random model's greedy output falls into short cycles, the only repeats
            # prompt lookup can find in it
            backend.set_speculation(mode, ngram_min=1)
            if sz["warmup"]:
                run_engine(engine, repeating_requests(b, sz["prompt"], vocab, seed=200 + b), max(2, sz["spec_new"] // 4))
            drafted0 = engine.stats().get("spec_draft_tokens", 0) or 0
            accepted0 = engine.stats().get("spec_accepted_tokens", 0) or 0
            tok_s, _ = run_engine(engine, reqs, sz["spec_new"])
            st = engine.stats()
            drafted = (st.get("spec_draft_tokens", 0) or 0) - drafted0
            accepted = (st.get("spec_accepted_tokens", 0) or 0) - accepted0
            base = tok_s if mode == "off" else base
            cells.append({"batch_size": b, "speculation": mode, "tok_s": tok_s, "speedup": tok_s / base,
                          "spec_draft_tokens": drafted, "acceptance_rate": accepted / drafted if drafted else None,
                          "decision": st.get("speculation"), "reason": st.get("speculation_reason")})
    backend.set_speculation("off")
    return cells


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="a small model of the same family (a first pass)")
    ap.add_argument("--cpu-smoke", action="store_true", help="a tiny config on the CPU, Triton under the interpreter")
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--skip-spec", action="store_true")
    ap.add_argument("--requests", type=int, default=256)
    args = ap.parse_args()
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("gpu_torch.py: torch sees no CUDA GPU (use --cpu-smoke for the CPU run)", file=sys.stderr)
        raise SystemExit(2)
    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    cfg_dict = TINY if args.cpu_smoke else SMALL if args.small else LLAMA3_8B
    sz = sizes(args)
    vocab = cfg_dict["vocab_size"]
    out: dict = {"device": "cpu (Triton interpreter)" if args.cpu_smoke else torch.cuda.get_device_name(),
                 "model": "tiny" if args.cpu_smoke else "small" if args.small else "llama-3-8b-shaped",
                 "dtype": "bfloat16", "torch": torch.__version__, "sizes": {k: v for k, v in sz.items()}}
    try:
        import triton

        out["triton"] = triton.__version__
    except ImportError:
        out["triton"] = None
    out["copy_bandwidth_gbps"] = measure_bandwidth_gbps(device)
    if not args.skip_hf:
        out.update(hf_baselines(cfg_dict, device, sz))
    cfg = ModelConfig.from_hf(cfg_dict)
    t0 = time.perf_counter()
    tcfg = TorchConfig(device=device.type, dtype="bfloat16", kernels="triton" if args.cpu_smoke else "auto",
                       max_model_len=sz["max_model_len"], max_num_seqs=sz["max_num_seqs"], speculation="off",
                       **({"num_kv_blocks": 32, "measure_bandwidth": False} if args.cpu_smoke else {}))
    backend = TorchBackend.from_config(cfg, tcfg)
    out["engine_load_s"] = time.perf_counter() - t0
    engine = Engine(backend, None, "torch")
    try:
        weight_bytes = backend.meter.weight_bytes
        out["weight_gb"] = weight_bytes / 1e9
        out["roofline_tok_s_b1"] = out["copy_bandwidth_gbps"] * 1e9 / weight_bytes
        out["kv_blocks"] = backend.block_manager.num_blocks
        out["attention"] = backend.runner.attention_path
        one = requests(1, sz["prompt"], vocab, seed=1)
        run_engine(engine, one, max(2, sz["new"] // 4))  # warm-up
        _, (r,) = run_engine(engine, one, sz["new"])
        out["engine_b1_tok_s"] = 1 / r.metrics.tpot_s if r.metrics.tpot_s else None
        if out["engine_b1_tok_s"]:
            out["engine_b1_fraction_of_roofline"] = out["engine_b1_tok_s"] / out["roofline_tok_s_b1"]
        out["engine_b1_step_roofline_fraction"] = engine.stats()["roofline_fraction"]
        if sz["warmup"]:  # other prompts than the timed ones: no prefix hits
            run_engine(engine, requests(sz["requests"], sz["prompt"], vocab, seed=7), sz["new"])
        out["engine_batch_tok_s"], _ = run_engine(engine, requests(sz["requests"], sz["prompt"], vocab), sz["new"])
        if out.get("hf_generate_batch_tok_s"):
            out["batch_speedup_vs_generate_batch"] = out["engine_batch_tok_s"] / out["hf_generate_batch_tok_s"]
        if out.get("hf_generate_static_b1_tok_s") and out["engine_b1_tok_s"]:
            out["b1_speedup_vs_generate_static"] = out["engine_b1_tok_s"] / out["hf_generate_static_b1_tok_s"]
        if not args.skip_spec:
            out["speculation_cells"] = speculation_cells(engine, vocab, sz)
        st = engine.stats()
        out["cold_start_ms"] = st.get("cold_start_ms")
        out["stats"] = {k: v for k, v in st.items() if isinstance(v, (int, float, str)) or v is None}
        out["graphs_captured"] = len(backend.runner.graphs)
    finally:
        engine.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
