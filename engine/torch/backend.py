"""The torch backend: continuous batching over a paged KV cache with prefix caching, for the
Llama family; fp32 on the CPU, bf16 + CUDA graphs on a GPU."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import torch

from engine.backends.base import Backend, SeqOutput
from engine.model_source import ModelSpec
from engine.torch import weights
from engine.torch.block_manager import BlockManager
from engine.torch.llama import LlamaForCausalLM, ModelConfig
from engine.torch.model_runner import ModelRunner, RunnerConfig
from engine.torch.roofline import RooflineMeter, measure_bandwidth_gbps
from engine.torch.scheduler import Scheduler, SchedulerConfig
from engine.torch.sequence import Sequence
from engine.types import SPECULATION_MODES, EngineError, Prompt, Request, StepEvent

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


PACK_MAX_BYTES = 2 * 1024**3  # prepacking keeps a second copy of the weights: small models only


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

    def __init__(
        self,
        spec: ModelSpec,
        device: str = "auto",
        draft: str | None = None,
        speculation: str = "auto",
        *,
        dtype: str = "auto",
        block_size: int = 16,
        num_kv_blocks: int = 0,
        kv_cache_gb: float = 2.0,
        max_num_seqs: int | None = None,
        max_num_batched_tokens: int | None = None,
        max_model_len: int | None = None,
        n_ctx: int | None = None,
        enable_prefix_caching: bool = True,
        cuda_graphs: bool = True,
        n_threads: int | None = None,
        measure_bandwidth: bool = True,
        spec_options: dict[str, Any] | None = None,
    ):
        _check_speculation(speculation, draft)
        self.device = pick_device(device)
        if dtype == "auto":
            self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        elif dtype in _DTYPES:
            self.dtype = _DTYPES[dtype]
        else:
            raise EngineError(f"unknown dtype {dtype!r}: choose one of auto, {', '.join(_DTYPES)}")
        if n_threads:
            torch.set_num_threads(n_threads)
        folder = weights.model_dir(spec)
        self.model_name = spec.display_name
        self.tokenizer = _load_tokenizer(folder)
        self._tok_lock = threading.Lock()
        self.eos_token_ids = weights.eos_ids(folder, self.tokenizer) if self.tokenizer else frozenset()
        cfg = ModelConfig.from_hf(weights.read_config(folder))
        limit = max_model_len or n_ctx or cfg.max_position_embeddings
        self.context_window = min(limit, cfg.max_position_embeddings, cfg.sliding_window or limit)
        self.model = build_model(cfg, self.context_window, self.device, self.dtype, weights.load_tensors(folder))
        self._setup(cfg, block_size, num_kv_blocks, kv_cache_gb, max_num_seqs, max_num_batched_tokens,
                    cuda_graphs, enable_prefix_caching, measure_bandwidth)
        self._draft_name = draft
        self.set_speculation(speculation, **(spec_options or {}))

    @classmethod
    def from_config(
        cls, cfg: ModelConfig, device: str = "auto", dtype: str = "auto", *, max_model_len: int | None = None,
        max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None, block_size: int = 16,
        num_kv_blocks: int = 0, kv_cache_gb: float = 2.0, enable_prefix_caching: bool = True,
        cuda_graphs: bool = True, measure_bandwidth: bool = True, speculation: str = "off",
        spec_options: dict[str, Any] | None = None,
    ) -> "TorchBackend":
        """A random-weight model of a given shape, without tokenizer (benchmarks, tests): submit
        prompt_token_ids."""
        _check_speculation(speculation, None)
        self = cls.__new__(cls)
        self.device = pick_device(device)
        self.dtype = _DTYPES.get(dtype) or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.model_name = f"random-{cfg.model_type}-{cfg.param_count() / 1e9:.1f}b"
        self.tokenizer, self._tok_lock, self.eos_token_ids = None, threading.Lock(), frozenset()
        self.context_window = min(max_model_len or cfg.max_position_embeddings, cfg.max_position_embeddings)
        self.model = build_model(cfg, self.context_window, self.device, self.dtype, None)
        self._setup(cfg, block_size, num_kv_blocks, kv_cache_gb, max_num_seqs, max_num_batched_tokens,
                    cuda_graphs, enable_prefix_caching, measure_bandwidth)
        self._draft_name = None
        self.set_speculation(speculation, **(spec_options or {}))
        return self

    def _setup(self, cfg: ModelConfig, block_size: int, num_kv_blocks: int, kv_cache_gb: float,
               max_num_seqs: int | None, max_num_batched_tokens: int | None, cuda_graphs: bool,
               prefix_caching: bool, measure: bool):
        gpu = self.device.type == "cuda"
        rcfg = RunnerConfig(
            block_size=block_size, num_kv_blocks=num_kv_blocks, kv_cache_gb=kv_cache_gb,
            max_num_seqs=max_num_seqs or (256 if gpu else 64), max_model_len=self.context_window,
            cuda_graphs=cuda_graphs,
        )
        max_batched = max_num_batched_tokens or (8192 if gpu else 1024)
        self.cfg = cfg
        self.runner = ModelRunner(self.model, cfg, rcfg, self.device, self.dtype)
        self.block_manager = BlockManager(self.runner.num_kv_blocks, rcfg.block_size, prefix_caching)
        if self.block_manager.inspector is not None:  # prefix reports quote the tokens around a miss
            self.block_manager.inspector.decode = self.decode
        self.scheduler = Scheduler(
            SchedulerConfig(rcfg.max_num_seqs, max(max_batched, rcfg.max_num_seqs), self.context_window),
            self.block_manager,
        )
        self.bandwidth_gbps = measure_bandwidth_gbps(self.device) if measure else 0.0
        self.meter = RooflineMeter(_weight_bytes(self.model), self.runner.kv_bytes_per_token, self.bandwidth_gbps)
        self._last: StepEvent | None = None
        self._last_roofline: float | None = None
        self.speculator = None
        self._drafters: dict[str, Any] = {}  # built once, kept across set_speculation()
        self._step_costs: dict = {}  # SpecPolicy.rows, kept across set_speculation()

    # ---- speculative decoding ----
    def set_speculation(self, mode: str, *, k_max: int | None = None, self_layers: int | None = None,
                        ngram_max: int = 3, ngram_min: int = 2) -> None:
        """Switch speculation between requests (engine idle): off, auto, ngram, draft, self.
        "draft" without a draft model is self-speculation; "auto" drafts with the draft model if
        one was given, else by prompt lookup, and decides per step whether that pays."""
        from engine.torch.proposers import NgramProposer, SelfDrafter
        from engine.torch.spec_policy import SpecPolicy
        from engine.torch.speculation import Speculator

        _check_speculation(mode, self._draft_name)
        self.speculation_mode = mode
        if mode == "off":
            self.speculator = None
            return
        kind = "ngram" if mode == "ngram" or (mode == "auto" and not self._draft_name) else "model"
        if kind == "ngram":
            proposer = NgramProposer(ngram_max, ngram_min)
        elif self._draft_name:
            proposer = self._draft_model_drafter()
        else:
            n = self_layers or max(1, self.cfg.num_layers // 4)
            proposer = SelfDrafter(self.runner, min(n, self.cfg.num_layers))
        k = k_max or (8 if kind == "ngram" else 4)
        if self.device.type == "cpu" and _weight_bytes(self.model) <= PACK_MAX_BYTES:
            # a batch-1 verify step runs k + 1 rows: GEMMs on prepacked weights make it cheaper
            self.model.pack_weights_for_rows(k + 1)
        policy = SpecPolicy(mode, k)
        # step times by rows are the hardware's and the model's, not the workload's: a policy
        # after a switch starts from what the last one measured (the plain step is re-measured)
        policy.rows = self._step_costs
        self.speculator = Speculator(mode, proposer, policy, self.context_window)

    def _draft_model_drafter(self):
        from engine.model_source import resolve_model
        from engine.torch.proposers import DraftModelDrafter

        d = self._drafters.get("draft")
        if d is not None:
            return d
        spec = resolve_model(self._draft_name)
        folder = weights.model_dir(spec)
        cfg = ModelConfig.from_hf(weights.read_config(folder))
        if cfg.vocab_size != self.cfg.vocab_size:
            raise EngineError(f"draft model {spec.display_name} has a vocabulary of {cfg.vocab_size} tokens, "
                              f"the target {self.cfg.vocab_size}: a draft model needs the same tokenizer")
        model = build_model(cfg, self.context_window, self.device, self.dtype, weights.load_tensors(folder))
        rc = self.runner.rcfg
        runner = ModelRunner(model, cfg, RunnerConfig(
            block_size=rc.block_size, kv_cache_gb=rc.kv_cache_gb / 4, max_num_seqs=rc.max_num_seqs,
            max_model_len=self.context_window, cuda_graphs=False), self.device, self.dtype)
        d = self._drafters["draft"] = DraftModelDrafter(runner, BlockManager(runner.num_kv_blocks, rc.block_size, False),
                                                        spec.display_name)
        return d

    # ---- tokens (any thread) ----
    def render_prompt(self, prompt: Prompt) -> list[int]:
        tok = self._need_tokenizer()
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        with self._tok_lock:
            try:
                if tok.chat_template:
                    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
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
        t0 = time.perf_counter_ns()
        spec = self.speculator
        plan_ns = spec.plan(self.scheduler.running) if spec is not None else 0
        batch = self.scheduler.schedule()
        outputs = self._drain_errors(t0)
        if not batch:
            return outputs, None
        t_fwd = time.perf_counter_ns()
        verifying = spec.speculating(batch) if spec is not None else []
        if verifying:
            res = spec.run(self.runner, batch, verifying)
            t_sampled = time.perf_counter_ns()
            self.scheduler.postprocess(batch, {s.seq_id: len(res.tokens[s.seq_id]) - 1 for s in verifying})
            new = res.tokens
        else:
            sampled = self.runner.run(batch)
            t_sampled = time.perf_counter_ns()
            self.scheduler.postprocess(batch)
            new = {sid: [tok] for sid, tok in sampled.items()}
        # model drafters ran one pass per draft token: read before the drafts are cleared below
        draft_passes = max((s.num_draft for s in verifying), default=0) if spec and spec.proposer.needs_forward else 0
        for s in batch:
            toks = new.get(s.seq.seq_id)
            if toks is not None:
                s.seq.token_ids.append(toks[-1])  # accepted drafts are already in token_ids
                outputs.append(SeqOutput(s.seq.seq_id, toks, t_sampled))
            s.seq.clear_draft()
        info = self.runner.info
        note = "cuda graph" if info.used_graph else None
        n_draft = sum(s.num_tokens - 1 for s in batch if s.seq in verifying) if verifying else 0
        if verifying:  # verify rows ran as chunks: count them as decode work, not prefill
            info.prefill_tokens -= n_draft + len(verifying)
            info.decode_tokens += len(verifying)
        if spec is not None:
            draft_ns = plan_ns + (res.draft_ns if verifying else 0)
            if not info.prefill_tokens:
                spec.policy.observe_step(len(batch), (t_sampled - t_fwd - (res.draft_ns if verifying else 0)) / 1e9,
                                         n_draft, draft_ns / 1e9, draft_passes)
            note = f"spec {spec.policy.decision}: {spec.policy.reason}"
        roofline = None
        if info.decode_tokens and not info.prefill_tokens:
            roofline = self.meter.fraction(t_sampled - t0, info.context_tokens)
            self._last_roofline = roofline
        bm = self.block_manager
        ev = StepEvent(
            step=0, t_start_ns=t0, t_end_ns=time.perf_counter_ns(), batch_size=len(batch),
            prefill_tokens=info.prefill_tokens, decode_tokens=info.decode_tokens,
            running=len(self.scheduler.running), waiting=len(self.scheduler.waiting),
            kv_blocks_used=bm.num_used_blocks, kv_blocks_free=bm.num_free_blocks, roofline_fraction=roofline,
            spec_draft_tokens=res.draft_tokens if verifying else 0,
            spec_accepted_tokens=res.accepted_tokens if verifying else 0, note=note,
        )
        self._last = ev
        return outputs, ev

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
            **self._spec_stats(),
        }

    def _spec_stats(self) -> dict[str, Any]:
        if self.speculator is None:
            return {"speculation_mode": "off", "speculation": "off", "speculation_reason": "speculation='off' asked for",
                    "spec_k": 0}
        return self.speculator.stats_dict()

    def close(self) -> None:
        self.runner.graphs.clear()


def _check_speculation(mode: str, draft: str | None) -> None:
    if mode not in SPECULATION_MODES:
        raise EngineError(f"unknown speculation {mode!r}: choose one of {', '.join(SPECULATION_MODES)}")
    if draft is not None and mode in ("ngram", "self"):
        raise EngineError(f"speculation={mode!r} does not use a draft model; drop draft= or use 'draft' or 'auto'")


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
    return model


def _weight_bytes(model: LlamaForCausalLM) -> int:
    """Bytes a decode step reads: every parameter once, except an untied embedding table (rows only)."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    if not model.cfg.tie_word_embeddings:
        total -= model.embed_tokens.weight.numel() * model.embed_tokens.weight.element_size()
    return total


def _load_tokenizer(folder: Path):
    if not any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return None
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as e:
        raise EngineError(f"cannot load the tokenizer in {folder}: {e}") from e
