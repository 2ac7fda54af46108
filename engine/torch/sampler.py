"""Sampling from logits, for the model runner and the speculative verifier alike: temperature,
top-k and top-p, each sequence drawing from its own seeded generator."""
from __future__ import annotations

import random

import torch

from engine.torch.sequence import Sequence
from engine.types import SamplingParams, TokenLogprob


def probs(logits: torch.Tensor, p: SamplingParams) -> torch.Tensor:
    """The sampling distribution of each row (the last dim) under p's temperature, top-k, top-p."""
    x = logits.float() / p.temperature
    if p.top_k and p.top_k < x.shape[-1]:
        kth = torch.topk(x, p.top_k, dim=-1).values[..., -1:]
        x = x.masked_fill(x < kth, float("-inf"))
    if p.top_p < 1.0:
        sorted_x, idx = torch.sort(x, descending=True, dim=-1)
        sorted_p = torch.softmax(sorted_x, dim=-1)
        drop = sorted_p.cumsum(-1) - sorted_p > p.top_p  # keep the smallest set reaching top_p
        x = x.scatter(-1, idx, sorted_x.masked_fill(drop, float("-inf")))
    return torch.softmax(x, dim=-1)


def generator(seq: Sequence, device: torch.device) -> torch.Generator:
    """seq's generator, made on its first draw: seeded by the request, else at random."""
    if seq.generator is None:
        seq.generator = torch.Generator(device=device)
        p = seq.params
        seq.generator.manual_seed(p.seed if p.seed is not None else random.getrandbits(63))
    return seq.generator


def sample_row(logits: torch.Tensor, seq: Sequence) -> torch.Tensor:
    """One token id (a 1-element tensor, on the logits' device) for one row of logits."""
    return torch.multinomial(probs(logits, seq.params), 1, generator=generator(seq, logits.device))[0]


def sample(logits: torch.Tensor, seqs: list[Sequence]) -> list[int]:
    """One token per row: argmax for greedy sequences, drawn for the others."""
    out = logits.argmax(dim=-1)
    drawn = [i for i, s in enumerate(seqs) if not s.params.greedy]
    if drawn:
        out = out.clone()
        for i in drawn:
            out[i] = sample_row(logits[i], seqs[i])
    return out.tolist()  # the one host sync of the step


def token_logprobs(logits: torch.Tensor, token_ids: list[int], n: int) -> list[TokenLogprob]:
    """Each row's chosen token's log-probability under the raw distribution (no temperature or
    truncation, as vLLM reports by default) and the n likeliest tokens with theirs."""
    lp = torch.log_softmax(logits.float(), dim=-1)
    chosen = lp.gather(-1, torch.tensor(token_ids, device=lp.device).view(-1, 1)).view(-1).tolist()
    if n:
        top = torch.topk(lp, n, dim=-1)
        ids, vals = top.indices.tolist(), top.values.tolist()
    else:
        ids = vals = [[] for _ in token_ids]
    return [TokenLogprob(t, c, list(zip(i, v))) for t, c, i, v in zip(token_ids, chosen, ids, vals)]


def add_logprobs(res_logprobs: dict, seq: Sequence, logits: torch.Tensor, token_ids: list[int]) -> None:
    """Record seq's logprobs for the tokens it produced this step (one logits row each), if asked."""
    n = seq.params.logprobs
    if n is not None and token_ids:
        res_logprobs[seq.seq_id] = token_logprobs(logits[: len(token_ids)], token_ids, n)
