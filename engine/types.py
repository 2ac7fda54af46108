"""Plain data that crosses the engine's boundary: sampling parameters, requests, events, results.
Everything here is importable without torch or llama.cpp, so clients stay cheap to start."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any, Union

ChatMessage = dict[str, Any]
Prompt = Union[str, list[ChatMessage]]

# the names Engine.load takes (and the CLI offers); "auto" first, as the default
BACKENDS = ("auto", "torch", "llamacpp", "openai")
SPECULATION_MODES = ("auto", "off", "ngram", "draft", "self")


def flatten_content(content: Any) -> str:
    """Message content as text: a string, or the text of a list of content parts (OpenAI's, Anthropic's,
    a trace format's), one part a line as vLLM joins them for a chat template; parts without text
    (images, ...) add nothing."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                t = part.get("text", part.get("content"))
                if t is not None:
                    out.append(t if isinstance(t, str) else flatten_content(t))
        return "\n".join(out)
    if isinstance(content, dict):
        return flatten_content(content.get("text", content.get("content", json.dumps(content))))
    return str(content)


class EngineError(Exception):
    """An error a user can cause (bad model path, bad prompt, ...); shown as one line."""


MAX_LOGPROBS = 20  # the OpenAI API's top_logprobs limit


@dataclass(slots=True)
class TokenLogprob:
    """One output token's log-probability under the model (its raw distribution, before temperature,
    top-k or top-p, as vLLM reports it by default) and the `top` likeliest tokens with theirs."""

    token_id: int
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)


@dataclass(slots=True)
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False
    logprobs: int | None = None  # None: none; N >= 0: each output token's log-probability and the N likeliest

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise EngineError(f"max_tokens must be >= 1 (got {self.max_tokens})")
        if self.temperature < 0:
            raise EngineError(f"temperature must be >= 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            raise EngineError(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.top_k < 0:
            raise EngineError(f"top_k must be >= 0 (got {self.top_k})")
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_LOGPROBS:
            raise EngineError(f"logprobs must be in 0..{MAX_LOGPROBS} (got {self.logprobs})")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "seed": self.seed,
            "stop": list(self.stop),
            "ignore_eos": self.ignore_eos,
            "logprobs": self.logprobs,
        }


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e6


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _s_to_ms(x: float | None) -> float | None:
    return None if x is None else x * 1e3


@dataclass(slots=True)
class RequestMetrics:
    """Timings of one request, all `time.perf_counter_ns()` taken in the engine thread."""

    arrival_ns: int
    scheduled_ns: int | None = None  # first time the scheduler gave it compute
    first_token_ns: int | None = None
    finished_ns: int | None = None
    token_times_ns: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    output_tokens: int = 0
    cached_prompt_tokens: int = 0
    spec_draft_tokens: int = 0
    spec_accepted_tokens: int = 0
    spec_verify_steps: int = 0
    # times the scheduler dropped this request's KV to make room and recomputed it later (torch engine)
    preemptions: int = 0
    # torch engine: blocks hit, first miss and what broke the match (engine.torch.prefix_inspector)
    prefix_report: dict[str, Any] | None = None

    @property
    def ttft_s(self) -> float | None:
        if self.first_token_ns is None:
            return None
        return (self.first_token_ns - self.arrival_ns) / 1e9

    @property
    def e2e_s(self) -> float | None:
        if self.finished_ns is None:
            return None
        return (self.finished_ns - self.arrival_ns) / 1e9

    @property
    def itl_s(self) -> list[float]:
        t = self.token_times_ns
        return [(b - a) / 1e9 for a, b in zip(t, t[1:])]

    @property
    def tpot_s(self) -> float | None:
        """(e2e - ttft) / (output_tokens - 1), the house (and vLLM) definition."""
        if self.output_tokens < 2 or self.finished_ns is None or self.first_token_ns is None:
            return None
        return (self.finished_ns - self.first_token_ns) / 1e9 / (self.output_tokens - 1)

    @property
    def queue_time_s(self) -> float | None:
        if self.scheduled_ns is None:
            return None
        return (self.scheduled_ns - self.arrival_ns) / 1e9

    @property
    def prefill_time_s(self) -> float | None:
        if self.scheduled_ns is None or self.first_token_ns is None:
            return None
        return (self.first_token_ns - self.scheduled_ns) / 1e9

    # the same figures in milliseconds, the unit of reports and of the database
    @property
    def ttft_ms(self) -> float | None:
        return _s_to_ms(self.ttft_s)

    @property
    def e2el_ms(self) -> float | None:
        return _s_to_ms(self.e2e_s)

    @property
    def tpot_ms(self) -> float | None:
        return _s_to_ms(self.tpot_s)

    @property
    def itl_ms(self) -> list[float]:
        return [x * 1e3 for x in self.itl_s]

    @property
    def acceptance_rate(self) -> float | None:
        if not self.spec_draft_tokens:
            return None
        return self.spec_accepted_tokens / self.spec_draft_tokens

    @property
    def mean_accepted_length(self) -> float | None:
        if not self.spec_verify_steps:
            return None
        return 1 + self.spec_accepted_tokens / self.spec_verify_steps

    def to_dict(self) -> dict[str, Any]:
        """Figures in milliseconds, with the house vocabulary (ttft_ms, tpot_ms, e2el_ms, ...)."""
        itl = self.itl_ms
        gen_s = None
        if self.first_token_ns is not None and self.token_times_ns:
            gen_s = (self.token_times_ns[-1] - self.first_token_ns) / 1e9
        return {
            "ttft_ms": self.ttft_ms,
            "tpot_ms": self.tpot_ms,
            "e2el_ms": self.e2el_ms,
            "queue_time_ms": _s_to_ms(self.queue_time_s),
            "prefill_time_ms": _s_to_ms(self.prefill_time_s),
            "mean_itl_ms": statistics.fmean(itl) if itl else None,
            "p50_itl_ms": percentile(itl, 50),
            "p95_itl_ms": percentile(itl, 95),
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "spec_draft_tokens": self.spec_draft_tokens,
            "spec_accepted_tokens": self.spec_accepted_tokens,
            "preemptions": self.preemptions,
            "acceptance_rate": self.acceptance_rate,
            "mean_accepted_length": self.mean_accepted_length,
            "output_tokens_per_s": (self.output_tokens - 1) / gen_s if gen_s else None,
        }


@dataclass(slots=True)
class Request:
    request_id: str
    prompt: Prompt
    params: SamplingParams
    prompt_token_ids: list[int]
    metrics: RequestMetrics
    tags: dict[str, Any] = field(default_factory=dict)  # passed through to listeners (session id, ...)


# ---- events (emitted in the engine thread, in order) ----


@dataclass(slots=True)
class RequestStarted:
    request_id: str
    prompt_tokens: int
    arrival_ns: int
    params: SamplingParams
    tags: dict[str, Any]


@dataclass(slots=True)
class TokenEvent:
    request_id: str
    index: int  # position of the first token of this event in the output
    token_ids: list[int]
    text: str  # detokenized text delta (may be empty while a stop string is pending)
    t_ns: int
    tags: dict[str, Any]
    logprobs: list[TokenLogprob] | None = None  # one per token_ids entry, when the request asked


@dataclass(slots=True)
class StepEvent:
    """One engine iteration; fields a backend does not know stay None."""

    step: int
    t_start_ns: int
    t_end_ns: int
    batch_size: int
    prefill_tokens: int
    decode_tokens: int
    running: int = 0
    waiting: int = 0
    kv_blocks_used: int | None = None
    kv_blocks_free: int | None = None
    roofline_fraction: float | None = None
    spec_draft_tokens: int = 0
    spec_accepted_tokens: int = 0
    note: str | None = None


@dataclass(slots=True)
class Result:
    request_id: str
    text: str
    token_ids: list[int]
    metrics: RequestMetrics
    finish_reason: str  # "stop" | "length" | "cancelled" | "error"
    error: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    logprobs: list[TokenLogprob] | None = None  # one per token_ids entry, when the request asked


@dataclass(slots=True)
class RequestFinished:
    request_id: str
    result: Result
    tags: dict[str, Any]


EngineEvent = Union[RequestStarted, TokenEvent, StepEvent, RequestFinished]
