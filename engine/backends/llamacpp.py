"""llama.cpp backend (llama-cpp-python): GGUF models on the CPU, one request at a time in
arrival order, reusing the KV of the longest common prefix with the previous request."""
from __future__ import annotations

import os
import time
from collections import deque
from typing import Any

from engine.backends.base import Backend, SeqOutput
from engine.model_source import ModelSpec
from engine.types import EngineError, Prompt, Request, StepEvent


class LlamaCppBackend(Backend):
    name = "llamacpp"

    def __init__(
        self,
        spec: ModelSpec,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_batch: int = 512,
        speculation: str = "auto",
        **_: Any,
    ):
        try:
            from llama_cpp import Llama
        except ImportError as e:  # pragma: no cover - depends on the install
            raise EngineError(f"llama-cpp-python is not installed: {e}") from None
        self.spec = spec
        self.model_name = spec.display_name
        kwargs: dict[str, Any] = {"n_ctx": n_ctx, "n_batch": n_batch, "verbose": False}
        if n_threads:
            kwargs["n_threads"] = n_threads
        t0 = time.perf_counter()
        try:
            with _quiet_stderr():
                self.llm = Llama(model_path=spec.path, **kwargs)
        except (ValueError, RuntimeError) as e:
            raise EngineError(f"llama.cpp could not load {spec.name}: {str(e).splitlines()[0]}") from None
        train_ctx = int(self.llm.metadata.get("llama.context_length") or self.llm.metadata.get(f"{self.llm.metadata.get('general.architecture', 'llama')}.context_length") or n_ctx)
        self.context_window = min(self.llm.n_ctx(), train_ctx)
        self.cold_start_ms = {"load": (time.perf_counter() - t0) * 1e3}  # + first_token, as the torch engine's
        eos = {self.llm.token_eos()}
        eot = self.llm.metadata.get("tokenizer.ggml.eot_token_id")
        if eot is not None:
            eos.add(int(eot))
        self.eos_token_ids = frozenset(t for t in eos if t >= 0)
        self._formatter = self._chat_formatter()
        self._queue: deque[Request] = deque()
        self._current: Request | None = None
        self._gen = None
        self._prefix_hits = 0
        self._prompt_tokens_seen = 0
        # prompt lookup lost here (an A/B measured on demand and cached; never measured at load)
        from engine.backends.llamacpp_spec import decide

        self.speculation, self.speculation_reason = "off", f"speculation={speculation!r}: " + decide(spec.path)[1]

    # ---- prompts ----
    def _chat_formatter(self):
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def tok_text(key: str) -> str:
            tid = self.llm.metadata.get(key)
            if tid is None:
                return ""
            return self.llm.detokenize([int(tid)], special=True).decode("utf-8", errors="replace")

        return Jinja2ChatFormatter(
            template=template,
            eos_token=tok_text("tokenizer.ggml.eos_token_id"),
            bos_token=tok_text("tokenizer.ggml.bos_token_id"),
            add_generation_prompt=True,
        )

    def render_prompt(self, prompt: Prompt, tools: list[dict] | None = None) -> list[int]:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        if self._formatter is None:
            # No template in the file: plain concatenation, the only honest fallback.
            text = "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in messages) + "\nassistant:"
            return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        rendered = self._formatter(messages=messages, tools=tools) if tools else self._formatter(messages=messages)
        add_bos = not getattr(rendered, "added_special", False) and self.llm.metadata.get("tokenizer.ggml.add_bos_token", "true") != "false"
        ids = self.llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=add_bos, special=True)
        return ids

    def decode(self, token_ids: list[int]) -> str:
        return self.llm.detokenize(token_ids).decode("utf-8", errors="replace")

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    # ---- scheduling: FIFO, one token per step ----
    def add_request(self, request: Request) -> None:
        self._queue.append(request)

    def free_request(self, request_id: str) -> None:
        if self._current is not None and self._current.request_id == request_id:
            if self._gen is not None:
                self._gen.close()
            self._gen = None
            self._current = None
        else:
            self._queue = deque(r for r in self._queue if r.request_id != request_id)

    def has_unfinished(self) -> bool:
        return self._current is not None or bool(self._queue)

    def _start(self, req: Request) -> None:
        p = req.params
        ids = req.prompt_token_ids
        cached = self._common_prefix(ids)
        req.metrics.scheduled_ns = time.perf_counter_ns()
        req.metrics.cached_prompt_tokens = cached
        self._prefix_hits += cached
        self._prompt_tokens_seen += len(ids)
        if p.seed is not None:
            self.llm.set_seed(p.seed)
        self._gen = self.llm.generate(
            ids,
            temp=p.temperature,
            top_k=p.top_k if p.top_k > 0 else 0,
            top_p=p.top_p,
            min_p=0.0,
            typical_p=1.0,
            repeat_penalty=1.0,
            reset=True,
        )
        self._current = req

    def _common_prefix(self, ids: list[int]) -> int:
        n = self.llm.n_tokens
        if n == 0:
            return 0
        old = self.llm.input_ids[:n]
        k = 0
        for a, b in zip(old, ids):
            if a != b:
                break
            k += 1
        # llama-cpp-python evaluates at least the last prompt token again
        return min(k, len(ids) - 1)

    def step(self) -> tuple[list[SeqOutput], StepEvent | None]:
        t0 = time.perf_counter_ns()
        prefill = 0
        if self._current is None:
            self._start(self._queue.popleft())
            prefill = len(self._current.prompt_token_ids) - self._current.metrics.cached_prompt_tokens
        req = self._current
        assert req is not None and self._gen is not None
        try:
            token = next(self._gen)
        except StopIteration:
            # llama.cpp stops at its own context end; report it as a failure of this request alone
            self.free_request(req.request_id)
            return [SeqOutput(req.request_id, [], time.perf_counter_ns(), finish_reason="length")], None
        except (RuntimeError, ValueError) as e:
            self.free_request(req.request_id)
            return [SeqOutput(req.request_id, [], time.perf_counter_ns(), error=str(e).splitlines()[0])], None
        t1 = time.perf_counter_ns()
        event = StepEvent(
            step=0, t_start_ns=t0, t_end_ns=t1, batch_size=1,
            prefill_tokens=prefill, decode_tokens=0 if prefill else 1,
            running=1, waiting=len(self._queue),
        )
        if "first_token" not in self.cold_start_ms:
            self.cold_start_ms["first_token"] = (t1 - req.metrics.arrival_ns) / 1e6
        return [SeqOutput(req.request_id, [int(token)], t1)], event

    def stats(self) -> dict[str, Any]:
        return {
            "waiting": len(self._queue),
            "batch_size": 1 if self._current is not None else 0,
            "prefix_cache_hit_rate": (self._prefix_hits / self._prompt_tokens_seen) if self._prompt_tokens_seen else None,
            "speculation": self.speculation,
            "speculation_reason": self.speculation_reason,
            "cold_start_ms": dict(self.cold_start_ms),
        }

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None
        llm = getattr(self, "llm", None)
        if llm is not None:
            try:
                llm.close()
            except Exception:
                pass


class _quiet_stderr:
    """llama.cpp prints load logs to fd 2 even with verbose=False on some builds."""

    def __enter__(self):
        try:
            self._saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:
            self._saved = None
        return self

    def __exit__(self, *exc):
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
