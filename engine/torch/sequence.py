"""A Sequence is one request inside the torch engine: its tokens (prompt + output so far), how many
of them have KV in the cache, the blocks that hold it, and the draft tokens of the coming step."""
from __future__ import annotations

from enum import Enum, auto

import torch

from engine.types import Request, SamplingParams


class SequenceStatus(Enum):
    WAITING = auto()
    RUNNING = auto()


class Sequence:
    __slots__ = (
        "request", "seq_id", "token_ids", "num_prompt_tokens", "num_computed_tokens", "block_table",
        "block_hashes", "status", "params", "generator", "scheduled_once", "num_preemptions",
        "num_draft", "draft_token_ids",
    )

    def __init__(self, request: Request):
        self.request = request
        self.seq_id = request.request_id
        self.token_ids: list[int] = list(request.prompt_token_ids)
        self.num_prompt_tokens = len(self.token_ids)
        # tokens whose keys/values are in the cache; the rest are computed by the coming steps
        self.num_computed_tokens = 0
        self.block_table: list[int] = []
        self.block_hashes: list[int] = []  # chained hash of each full block, in order
        self.status = SequenceStatus.WAITING
        self.params: SamplingParams = request.params
        self.generator: torch.Generator | None = None
        self.scheduled_once = False
        self.num_preemptions = 0
        # speculative decoding: draft tokens to verify in the coming step (set by the speculator
        # before scheduling; model drafters fill draft_token_ids after it). They never enter
        # token_ids: the scheduler's postprocess appends the accepted ones with the sampled token.
        self.num_draft = 0
        self.draft_token_ids: list[int] = []

    def clear_draft(self) -> None:
        self.num_draft = 0
        self.draft_token_ids = []

    def tokens(self, start: int, end: int) -> list[int]:
        """Tokens at positions start..end, reading on into the drafts past the last token (the
        inputs of a verify step or of a draft pass)."""
        n = len(self.token_ids)
        if end <= n:
            return self.token_ids[start:end]
        return self.token_ids[start:] + self.draft_token_ids[max(0, start - n) : end - n]

    @property
    def num_tokens_with_drafts(self) -> int:
        return len(self.token_ids) + len(self.draft_token_ids)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def num_uncomputed(self) -> int:
        return len(self.token_ids) - self.num_computed_tokens

    def __repr__(self) -> str:
        return (f"Sequence({self.seq_id!r}, tokens={self.num_tokens}, computed={self.num_computed_tokens}, "
                f"blocks={len(self.block_table)}, {self.status.name})")
