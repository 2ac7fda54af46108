"""The torch backend: continuous batching over a paged KV cache with prefix caching, for the
Llama family; fp32 on the CPU, bf16 + CUDA graphs on a GPU."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from engine.backends.base import Backend, SeqOutput
from engine.model_source import ModelSpec
from engine.torch import weights
from engine.torch.block_manager import BlockManager
from engine.torch.config import DTYPES, TorchConfig, check_speculation
from engine.torch.llama import LlamaForCausalLM, ModelConfig
from engine.torch.model_runner import ModelRunner, RunResult
from engine.torch.roofline import RooflineMeter, measure_bandwidth_gbps
from engine.torch.scheduler import Scheduler, ScheduledSeq
from engine.torch.sequence import Sequence
from engine.types import EngineError, Prompt, Request, StepEvent


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise EngineError(f"unknown device {device!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EngineError("device 'cuda' asked for, but torch sees no CUDA GPU")
    return dev


class TorchBackend(Backend):
    name = "torch"
    supports_logprobs = True

    def __init__(self, spec: ModelSpec, config: TorchConfig):
        self._place(config)  # before the weights load: a bad device fails fast
        t0 = time.perf_counter()
        folder = weights.model_dir(spec)
        t1 = time.perf_counter()
        # cold start by stage, in ms: a GGUF's conversion (~0 once cached), reading and placing the
        # weights, the KV cache, the bandwidth probe, CUDA graphs, the first request's first token
        self.cold_start_ms = {"convert": (t1 - t0) * 1e3} if spec.kind == "gguf" else {}
        self.model_name = spec.display_name
        self.tokenizer = _load_tokenizer(folder)
        self.eos_token_ids = weights.eos_ids(folder, self.tokenizer) if self.tokenizer else frozenset()
        self._setup(ModelConfig.from_hf(weights.read_config(folder)), config, weights.load_tensors(folder), t1)

    @classmethod
    def from_config(cls, cfg: ModelConfig, config: TorchConfig) -> "TorchBackend":
        """A random-weight model of a given shape, without tokenizer (benchmarks, tests): submit
        prompt_token_ids."""
        self = cls.__new__(cls)
        self._place(config)
        self.model_name = f"random-{cfg.model_type}-{cfg.param_count() / 1e9:.1f}b"
        self.tokenizer, self.eos_token_ids = None, frozenset()
        self.cold_start_ms = {}
        self._setup(cfg, config, None, time.perf_counter())
        return self

    def _place(self, config: TorchConfig) -> None:
        self.device = pick_device(config.device)
        if config.dtype == "auto":
            self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        else:
            self.dtype = getattr(torch, DTYPES[config.dtype])
        if config.n_threads:
            torch.set_num_threads(config.n_threads)

    def _setup(self, cfg: ModelConfig, config: TorchConfig, tensors: dict | None, t_load: float) -> None:
        """Model, KV cache, scheduler and meters for a resolved config; then speculation. t_load:
        when loading began (perf_counter s), for the cold-start stages."""
        self.cfg = cfg
        attends_to = min(cfg.max_position_embeddings, cfg.sliding_window or cfg.max_position_embeddings)
        self.config = config = config.resolve(self.device.type == "cuda", attends_to)
        self.context_window = config.max_model_len
        self._tok_lock = threading.Lock()
        self.model = build_model(cfg, self.context_window, self.device, self.dtype, tensors)
        del tensors
        t_kv = _synced(self.device)
        self.cold_start_ms["load"] = (t_kv - t_load) * 1e3
        self.runner = ModelRunner(self.model, config)
        t_bw = _synced(self.device)
        self.cold_start_ms["kv_cache"] = (t_bw - t_kv) * 1e3
        self.block_manager = BlockManager(self.runner.num_kv_blocks, config.block_size, config.enable_prefix_caching)
        if self.block_manager.inspector is not None:  # prefix reports quote the tokens around a miss
            self.block_manager.inspector.decode = self.decode
        self.scheduler = Scheduler(config, self.block_manager)
        self.bandwidth_gbps = measure_bandwidth_gbps(self.device) if config.measure_bandwidth else 0.0
        self.cold_start_ms["bandwidth"] = (time.perf_counter() - t_bw) * 1e3
        self.runner.capture_graphs()  # Triton graphs, every row bucket (0 ms on a CPU: there are none)
        self.meter = RooflineMeter(_weight_bytes(self.model), self.runner.kv_bytes_per_token, self.bandwidth_gbps)
        self._last: StepEvent | None = None
        self._last_roofline: float | None = None
        self.speculator = None
        self._drafters: dict[str, Any] = {}  # built once, kept across set_speculation()
        self._step_costs: dict = {}  # SpecPolicy.rows, kept across set_speculation()
        self._plain_costs: dict = {}  # SpecPolicy.plain_rows, likewise
        self.set_speculation(config.speculation, **config.spec_options)

    # ---- speculative decoding ----
    def set_speculation(self, mode: str, *, k_max: int | None = None, self_layers: int | None = None,
                        ngram_max: int = 3, ngram_min: int = 2) -> None:
        """Switch speculation between requests (engine idle): off, auto, ngram, draft, self.
        "draft" without a draft model is self-speculation; "auto" drafts with the draft model if
        one was given, else by prompt lookup, and decides per step whether that pays."""
        from engine.torch.proposers import NgramProposer, SelfDrafter
        from engine.torch.spec_policy import SpecPolicy
        from engine.torch.speculation import Speculator

        check_speculation(mode, self.config.draft)
        self.speculation_mode = mode
        if mode == "off":
            self.speculator = None
            return
        kind = "ngram" if mode == "ngram" or (mode == "auto" and not self.config.draft) else "model"
        if kind == "ngram":
            proposer = NgramProposer(ngram_max, ngram_min)
        elif self.config.draft:
            proposer = self._draft_model_drafter()
        else:
            n = self_layers or max(1, self.cfg.num_layers // 4)
            proposer = SelfDrafter(self.runner, min(n, self.cfg.num_layers))
        k = k_max or (8 if kind == "ngram" else 4)
        policy = SpecPolicy(mode, k)
        # step times by rows are the hardware's and the model's, not the workload's: a policy
        # after a switch starts from what the last one measured (the plain step is re-measured)
        policy.rows = self._step_costs
        policy.plain_rows = self._plain_costs
        self.speculator = Speculator(mode, proposer, policy, self.context_window)

    def _draft_model_drafter(self):
        from engine.model_source import resolve_model
        from engine.torch.proposers import DraftModelDrafter

        d = self._drafters.get("draft")
        if d is not None:
            return d
        spec = resolve_model(self.config.draft)
        folder = weights.model_dir(spec)
        cfg = ModelConfig.from_hf(weights.read_config(folder))
        if cfg.vocab_size != self.cfg.vocab_size:
            raise EngineError(f"draft model {spec.display_name} has a vocabulary of {cfg.vocab_size} tokens, "
                              f"the target {self.cfg.vocab_size}: a draft model needs the same tokenizer")
        model = build_model(cfg, self.context_window, self.device, self.dtype, weights.load_tensors(folder))
        c = self.config
        runner = ModelRunner(model, replace(c, num_kv_blocks=0, kv_cache_gb=c.kv_cache_gb / 4, cuda_graphs=False))
        d = self._drafters["draft"] = DraftModelDrafter(runner, BlockManager(runner.num_kv_blocks, c.block_size, False),
                                                        spec.display_name)
        return d

    # ---- tokens (any thread) ----
    def render_prompt(self, prompt: Prompt, tools: list[dict] | None = None) -> list[int]:
        tok = self._need_tokenizer()
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        with self._tok_lock:
            try:
                if tok.chat_template:
                    text = tok.apply_chat_template(messages, tools=tools or None, tokenize=False, add_generation_prompt=True)
                    return list(tok(text, add_special_tokens=False)["input_ids"])
                text = "\n".join(str(m.get("content", "")) for m in messages)
                return list(tok(text)["input_ids"])
            except Exception as e:  # a template that refuses these messages
                raise EngineError(f"cannot render the prompt with the model's chat template: {e}") from e

    def decode(self, token_ids: list[int]) -> str:
        if self.tokenizer is None:  # a random-weight model built from a config has ids, no text
            return ""
        with self._tok_lock:
            return self._need_tokenizer().decode(token_ids, skip_special_tokens=True)

    def count_tokens(self, text: str) -> int:
        with self._tok_lock:
            return len(self._need_tokenizer()(text, add_special_tokens=False)["input_ids"])

    def tokenize(self, text: str) -> list[int]:
        with self._tok_lock:
            return list(self._need_tokenizer()(text, add_special_tokens=False)["input_ids"])

    def _need_tokenizer(self):
        if self.tokenizer is None:
            raise EngineError(f"{self.model_name} has no tokenizer; submit prompt_token_ids")
        return self.tokenizer

    # ---- engine thread ----
    def add_request(self, request: Request) -> None:
        if not request.prompt_token_ids:
            raise EngineError("empty prompt")
        self.scheduler.add(Sequence(request))

    def free_request(self, request_id: str) -> None:
        self.scheduler.free(request_id)
        if self.speculator is not None:
            self.speculator.forget(request_id)

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    def step(self) -> tuple[list[SeqOutput], StepEvent | None]:
        """One iteration: schedule -> run (or draft and verify) -> postprocess."""
        t0 = time.perf_counter_ns()
        spec = self.speculator
        plan_ns = spec.plan(self.scheduler.running) if spec is not None else 0  # drafts, before the budget
        batch = self.scheduler.schedule()
        outputs = self._drain_errors(t0)
        if not batch:
            return outputs, None
        t_run = time.perf_counter_ns()
        verifying = spec.speculating(batch) if spec is not None else []
        res = spec.run(self.runner, batch, verifying) if verifying else self.runner.run(batch)
        t_sampled = time.perf_counter_ns()
        self.scheduler.postprocess(batch, res.tokens)
        for s in batch:
            toks = res.tokens.get(s.seq.seq_id)
            if toks is not None:
                outputs.append(SeqOutput(s.seq.seq_id, toks, t_sampled, logprobs=res.logprobs.get(s.seq.seq_id)))
        if spec is not None:
            spec.observe(len(batch), res, t_sampled - t_run, plan_ns)
        if "first_token" not in self.cold_start_ms and res.tokens:
            first = min(s.seq.request.metrics.arrival_ns for s in batch if s.seq.seq_id in res.tokens)
            self.cold_start_ms["first_token"] = (t_sampled - first) / 1e6
        self._last = self._step_event(t0, t_sampled, batch, res)
        return outputs, self._last

    def _step_event(self, t0: int, t_sampled: int, batch: list[ScheduledSeq], res: RunResult) -> StepEvent:
        roofline = None
        if res.decode_tokens and not res.prefill_tokens:
            roofline = self.meter.fraction(t_sampled - t0, res.context_tokens)
            self._last_roofline = roofline
        if self.speculator is not None:
            note = self.speculator.note
        else:
            note = "cuda graph" if res.used_graph else None
        bm, sch = self.block_manager, self.scheduler
        return StepEvent(
            step=0, t_start_ns=t0, t_end_ns=time.perf_counter_ns(), batch_size=len(batch),
            prefill_tokens=res.prefill_tokens, decode_tokens=res.decode_tokens,
            running=len(sch.running), waiting=len(sch.waiting),
            kv_blocks_used=bm.num_used_blocks, kv_blocks_free=bm.num_free_blocks, roofline_fraction=roofline,
            spec_draft_tokens=res.draft_tokens, spec_accepted_tokens=res.accepted_tokens, note=note,
        )

    def _drain_errors(self, t_ns: int) -> list[SeqOutput]:
        errors, self.scheduler.errors = self.scheduler.errors, []
        return [SeqOutput(sid, [], t_ns, error=msg) for sid, msg in errors]

    def stats(self) -> dict[str, Any]:
        bm, sch = self.block_manager, self.scheduler
        return {
            "batch_size": self._last.batch_size if self._last else 0,
            "running": len(sch.running),
            "waiting": len(sch.waiting),
            "kv_blocks_used": bm.num_used_blocks,
            "kv_blocks_free": bm.num_free_blocks,
            "kv_blocks_total": bm.num_blocks,
            "block_size": bm.block_size,
            "prefix_cache_hit_rate": sch.prefix_cache_hit_rate,
            "num_preemptions": sch.num_preemptions,
            "roofline_fraction": self._last_roofline,
            "memory_bandwidth_gbps": self.bandwidth_gbps,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "attention": self.runner.attention_path,
            "kernels": "triton" if self.runner.kernels is not None else "torch",
            "cold_start_ms": {**self.cold_start_ms, "graph_capture": self.runner.graph_capture_ms},
            **self._spec_stats(),
        }

    def _spec_stats(self) -> dict[str, Any]:
        if self.speculator is None:
            return {"speculation_mode": "off", "speculation": "off", "speculation_reason": "speculation='off' asked for",
                    "spec_k": 0}
        return self.speculator.stats_dict()

    def close(self) -> None:
        self.runner.graphs.clear()


def build_model(cfg: ModelConfig, max_positions: int, device, dtype, tensors: dict | None) -> LlamaForCausalLM:
    """Build on the meta device (no init cost), materialize on `device`, then load weights."""
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg, max_positions)
    model = model.to_empty(device=device)
    model.tie_weights()  # to_empty() gives each module its own tensor
    if tensors is None:
        model.init_random()
    else:
        model.load_hf_state_dict(tensors)
    model = model.to(dtype).eval().requires_grad_(False)
    model.init_rope(device)  # after to(dtype): the tables stay fp32
    model.pack_cpu_weights()  # CPU: packed once for the panel GEMM or oneDNN (the plain layer weights dropped)
    return model


def _synced(device: torch.device) -> float:
    """perf_counter once the device has finished what was queued (a stage's time is its work's)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _weight_bytes(model: LlamaForCausalLM) -> int:
    """Bytes a decode step reads: every weight once, except an untied embedding table (rows only).
    From the shapes, not the parameters: on a CPU the plain layer weights are dropped once packed."""
    cfg, elt = model.cfg, model.embed_tokens.weight.element_size()
    untied_embedding = 0 if cfg.tie_word_embeddings else cfg.vocab_size * cfg.hidden_size
    return (cfg.param_count() - untied_embedding) * elt


def _load_tokenizer(folder: Path):
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return None
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as e:
        raise EngineError(f"cannot load the tokenizer in {folder}: {e}") from e
