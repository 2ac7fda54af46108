"""What the engine thread needs from a backend: prompt rendering, one scheduling step, stats,
and what a step hands back (SeqOutput: the tokens each request produced)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.types import EngineError, Prompt, Request, StepEvent, TokenLogprob


@dataclass(slots=True)
class SeqOutput:
    """Tokens one request produced in one step (several when speculation was accepted)."""

    request_id: str
    token_ids: list[int]
    t_ns: int
    error: str | None = None  # set when this request failed alone; token_ids is then empty
    # Remote backends receive text, not ids: one text piece per entry of token_ids (ids may be -1).
    texts: list[str] | None = None
    finish_reason: str | None = None  # a backend that knows the request ended ("stop", "length")
    logprobs: list[TokenLogprob] | None = None  # one per token_ids entry, for a request that asked


class Backend:
    """Base class; each backend overrides what it supports. Methods run in the engine thread,
    except `render_prompt`, `decode` and `count_tokens`, which must be safe to call from any thread."""

    name = "base"
    model_name = ""
    context_window = 0
    eos_token_ids: frozenset[int] = frozenset()
    supports_logprobs = False  # SeqOutput.logprobs filled for a request whose params ask

    def render_prompt(self, prompt: Prompt, tools: list[dict] | None = None) -> list[int]:
        """Token ids of the prompt through the chat template; `tools` (OpenAI function specs) go
        to the template, which may ignore them."""
        raise NotImplementedError

    def decode(self, token_ids: list[int]) -> str:
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        raise NotImplementedError

    def tokenize(self, text: str) -> list[int]:
        """Token ids of raw text, no template, no special tokens (a completion prompt, a prefill)."""
        raise EngineError(f"the {self.name} backend has no local tokenizer")

    def add_request(self, request: Request) -> None:
        raise NotImplementedError

    def free_request(self, request_id: str) -> None:
        """Forget a request (finished, cancelled or failed) and release what it holds."""
        raise NotImplementedError

    def has_unfinished(self) -> bool:
        raise NotImplementedError

    def step(self) -> tuple[list[SeqOutput], StepEvent | None]:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass
