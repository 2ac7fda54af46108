"""GPU benchmark of the torch backend: a random-weight Llama-3-8B-shaped model in bf16 (nothing
downloaded), batch-1 decode vs the measured HBM roofline, and 256 x (128 prompt, 128 output)
requests vs transformers' `generate` and continuous batching (`generate_batch`), same script.

Run: PYTHONPATH=. python tests/perf/gpu_torch.py [--small] [--skip-hf]   (prints one JSON object)"""
from __future__ import annotations

import argparse
import gc
import json
import time

import torch

from engine import Engine, SamplingParams
from engine.torch.backend import TorchBackend
from engine.torch.config import TorchConfig
from engine.torch.llama import ModelConfig
from engine.torch.roofline import measure_bandwidth_gbps

LLAMA3_8B = dict(model_type="llama", vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-5, rope_theta=500000.0,
                 max_position_embeddings=8192, tie_word_embeddings=False)
SMALL = {**LLAMA3_8B, "hidden_size": 1024, "intermediate_size": 3584, "num_hidden_layers": 8,
         "num_attention_heads": 8, "num_key_value_heads": 2}


def requests(n: int, prompt: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, 120000, (n, prompt), generator=g).tolist()


def hf_baselines(cfg_dict: dict, n: int, prompt: int, new: int) -> dict:
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    hf_cfg = LlamaConfig(**{k: v for k, v in cfg_dict.items() if k != "model_type"})
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(hf_cfg).eval()
    finally:
        torch.set_default_dtype(torch.float32)
    out: dict = {}
    ids = torch.tensor(requests(1, prompt, seed=1), device="cuda")
    for attempt in range(2):  # second one timed
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                           do_sample=False)
        torch.cuda.synchronize()
        out["hf_generate_b1_tok_s"] = new / (time.perf_counter() - t0)
    try:
        gen_cfg = GenerationConfig(max_new_tokens=new, do_sample=False)
        inputs = requests(n, prompt)
        for attempt in range(2):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model.generate_batch(inputs=inputs, generation_config=gen_cfg)
            torch.cuda.synchronize()
            out["hf_generate_batch_tok_s"] = n * new / (time.perf_counter() - t0)
    except Exception as e:  # API differs across transformers versions: report, don't hide
        out["hf_generate_batch_error"] = f"{type(e).__name__}: {e}"
    del model
    gc.collect()
    torch.cuda.empty_cache()
    return out


def run_engine(engine: Engine, reqs: list[list[int]], new: int) -> float:
    sp = SamplingParams(max_tokens=new, temperature=0, ignore_eos=True)
    t0 = time.perf_counter()
    handles = [engine.submit("", sp, prompt_token_ids=p) for p in reqs]
    for h in handles:
        h.result()
    return len(reqs) * new / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="a small model of the same family (quick check)")
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--requests", type=int, default=256)
    args = ap.parse_args()
    cfg_dict = SMALL if args.small else LLAMA3_8B
    prompt, new = 128, 128
    out: dict = {"device": torch.cuda.get_device_name(), "model": "small" if args.small else "llama-3-8b-shaped"}
    out["copy_bandwidth_gbps"] = measure_bandwidth_gbps(torch.device("cuda"))
    if not args.skip_hf:
        out.update(hf_baselines(cfg_dict, args.requests, prompt, new))
    cfg = ModelConfig.from_hf(cfg_dict)
    backend = TorchBackend.from_config(cfg, TorchConfig(device="cuda", max_model_len=2048, max_num_seqs=256, speculation="off"))
    engine = Engine(backend, None, "torch")
    weight_bytes = backend.meter.weight_bytes
    out["weight_gb"] = weight_bytes / 1e9
    out["roofline_tok_s_b1"] = out["copy_bandwidth_gbps"] * 1e9 / weight_bytes
    out["kv_blocks"] = backend.block_manager.num_blocks
    one = requests(1, prompt, seed=1)
    run_engine(engine, one, 32)  # warm-up: capture the batch-1 graphs
    r = engine.submit("", SamplingParams(max_tokens=new, temperature=0, ignore_eos=True), prompt_token_ids=one[0]).result()
    out["engine_b1_tok_s"] = 1 / r.metrics.tpot_s
    out["engine_b1_roofline_fraction_of_copy_bw"] = out["engine_b1_tok_s"] / out["roofline_tok_s_b1"]
    out["engine_b1_step_roofline_fraction"] = engine.stats()["roofline_fraction"]
    reqs = requests(args.requests, prompt)
    run_engine(engine, requests(args.requests, prompt, seed=7), new)  # warm-up (other prompts: no prefix hits)
    out["engine_batch_tok_s"] = run_engine(engine, reqs, new)
    if "hf_generate_batch_tok_s" in out:
        out["batch_speedup_vs_generate_batch"] = out["engine_batch_tok_s"] / out["hf_generate_batch_tok_s"]
    if "hf_generate_b1_tok_s" in out:
        out["b1_speedup_vs_generate"] = out["engine_b1_tok_s"] / out["hf_generate_b1_tok_s"]
    out["stats"] = {k: v for k, v in engine.stats().items() if isinstance(v, (int, float, str)) or v is None}
    out["graphs_captured"] = len(backend.runner.graphs)
    engine.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
