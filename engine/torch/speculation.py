"""Speculative decoding in the torch engine: the verifier (greedy longest-prefix match, or rejection
sampling that keeps the target distribution), acceptance figures, and the step's plan -> draft -> verify."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.torch import sampler
from engine.torch.model_runner import ModelRunner, RunResult
from engine.torch.scheduler import ScheduledSeq
from engine.torch.sequence import Sequence
from engine.torch.spec_policy import SpecPolicy


# ---- the verifier ----

def verify_greedy(draft: list[int], target: list[int]) -> tuple[int, list[int]]:
    """target: the target's argmax at the last token and after each draft (len(draft) + 1).
    Accept the longest prefix of draft that matches, then the target's own next token."""
    a = 0
    while a < len(draft) and draft[a] == target[a]:
        a += 1
    return a, draft[:a] + [target[a]]


def verify_sampling(draft: list[int], probs: torch.Tensor, gen: torch.Generator,
                    draft_probs: torch.Tensor | None = None) -> tuple[int, list[int]]:
    """Standard speculative rejection sampling (Leviathan et al. 2023; Chen et al. 2023).
    probs: target distributions [len(draft) + 1, V]; draft_probs: the drafter's [len(draft), V],
    None for a deterministic drafter (one-hot q). Accept draft token x with prob min(1, p(x)/q(x));
    on the first rejection sample from norm(max(p - q, 0)); after all, sample from the last row.
    Every output token is then distributed exactly as the target alone would sample it."""
    probs = probs.cpu()
    u = torch.rand(len(draft), generator=gen, device=gen.device).cpu().tolist()
    for i, x in enumerate(draft):
        p = probs[i]
        q_x = 1.0 if draft_probs is None else float(draft_probs[i, x])
        if q_x > 0 and u[i] * q_x < float(p[x]):
            continue
        if draft_probs is None:
            residual = p.clone()
            residual[x] = 0.0
        else:
            residual = (p - draft_probs[i].cpu()).clamp_min(0.0)
        if float(residual.sum()) <= 0:  # p == q: nothing left to correct; p itself is right
            residual = p
        tok = int(torch.multinomial(residual / residual.sum(), 1, generator=_cpu_gen(gen)))
        return i, list(draft[:i]) + [tok]
    tok = int(torch.multinomial(probs[len(draft)], 1, generator=_cpu_gen(gen)))
    return len(draft), list(draft) + [tok]


def _cpu_gen(gen: torch.Generator) -> torch.Generator:
    if gen.device.type == "cpu":
        return gen
    g = torch.Generator()
    g.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device)))
    return g


# ---- figures ----

@dataclass(slots=True)
class SpecStats:
    """Engine-wide acceptance: totals and by draft position (position 1 = first draft token)."""

    draft_tokens: int = 0
    accepted_tokens: int = 0
    verify_steps: int = 0
    drafted_at: list[int] = field(default_factory=list)
    accepted_at: list[int] = field(default_factory=list)

    def add(self, k: int, a: int) -> None:
        self.draft_tokens += k
        self.accepted_tokens += a
        self.verify_steps += 1
        while len(self.drafted_at) < k:
            self.drafted_at.append(0)
            self.accepted_at.append(0)
        for i in range(k):
            self.drafted_at[i] += 1
            self.accepted_at[i] += i < a

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec_draft_tokens": self.draft_tokens,
            "spec_accepted_tokens": self.accepted_tokens,
            "spec_verify_steps": self.verify_steps,
            "acceptance_rate": self.accepted_tokens / self.draft_tokens if self.draft_tokens else None,
            "mean_accepted_length": 1 + self.accepted_tokens / self.verify_steps if self.verify_steps else None,
            "acceptance_by_position": [a / d if d else None for a, d in zip(self.accepted_at, self.drafted_at)],
        }


# ---- orchestration ----

class Speculator:
    """Owns a proposer and the policy. The backend calls plan() before scheduling and, when the
    scheduled batch holds drafts, run() instead of the runner's plain run()."""

    def __init__(self, mode: str, proposer, policy: SpecPolicy, context_window: int):
        self.mode = mode
        self.proposer = proposer
        self.policy = policy
        self.context_window = context_window
        self.stats = SpecStats()

    def plan(self, running: list[Sequence]) -> int:
        """Decide each running sequence's drafts for the coming step; returns ns spent proposing."""
        t0 = time.perf_counter_ns()
        cands: list[tuple[Sequence, int, int | None]] = []  # (sequence, most drafts, prompt-lookup match)
        for seq in running:
            seq.clear_draft()
            if seq.num_uncomputed != 1:
                continue  # still in prefill
            p = seq.params
            if self.mode == "auto" and not p.greedy and p.seed is not None:
                continue  # auto keeps a seeded sample reproducible: drafting would change its draws
            left = min(p.max_tokens, self.context_window - seq.num_prompt_tokens) - seq.num_output_tokens - 1
            cap = min(self.policy.k_max, left, self.context_window - seq.num_tokens)
            if cap <= 0:
                continue
            if self.proposer.needs_forward:
                cands.append((seq, cap, None))
            else:
                draft, match = self.proposer.propose_match(seq, cap)
                if draft:
                    seq.draft_token_ids = draft
                    cands.append((seq, len(draft), match))
        plan = self.policy.plan(cands, len(running), self.proposer.needs_forward)
        for seq, _, _ in cands:
            k = plan.get(seq.seq_id, 0)
            seq.num_draft = k
            if self.proposer.needs_forward:
                seq.draft_token_ids = []
            else:
                del seq.draft_token_ids[k:]
        return time.perf_counter_ns() - t0

    @staticmethod
    def speculating(batch: list[ScheduledSeq]) -> list[Sequence]:
        return [s.seq for s in batch if s.seq.num_draft > 0 and s.num_tokens == 1 + s.seq.num_draft]

    def run(self, runner: ModelRunner, batch: list[ScheduledSeq], spec: list[Sequence]) -> RunResult:
        """Draft (model drafters), then one forward pass that verifies every sequence's drafts and
        samples the plain rows. The tokens returned are what postprocess appends: for a verified
        sequence, its accepted drafts and the target's own next token."""
        res = RunResult.of(batch)
        # verify rows ran as chunks: count them as decode work, not prefill
        res.draft_tokens = sum(s.num_draft for s in spec)
        res.prefill_tokens -= res.draft_tokens + len(spec)
        res.decode_tokens += len(spec)
        t0 = time.perf_counter_ns()
        if self.proposer.needs_forward:
            self.proposer.draft(spec)
            res.draft_passes = max(s.num_draft for s in spec)  # one pass per draft token
        res.draft_ns = time.perf_counter_ns() - t0
        assert all(len(s.draft_token_ids) == s.num_draft for s in spec)
        seqs, counts, logits = runner.run_verify(batch, {s.seq_id: 1 + s.num_draft for s in spec})
        greedy_rows = logits.argmax(dim=-1).tolist() if logits is not None else []
        row = 0
        for seq, c in zip(seqs, counts):
            rows = slice(row, row + c)
            row += c
            if c == 1:
                res.tokens[seq.seq_id] = [greedy_rows[rows.start] if seq.params.greedy else
                                          int(sampler.sample_row(logits[rows.start], seq))]
            else:
                res.tokens[seq.seq_id] = self._verify(seq, logits[rows], greedy_rows[rows])
                res.accepted_tokens += len(res.tokens[seq.seq_id]) - 1
            if seq.params.logprobs is not None:  # the j-th token came from the row after j tokens
                sampler.add_logprobs(res.logprobs, seq, logits[rows], res.tokens[seq.seq_id])
        return res

    def _verify(self, seq: Sequence, logits: torch.Tensor, greedy: list[int]) -> list[int]:
        """seq's accepted drafts and the next token, from the target's rows at its last token and
        after each draft; the figures learn from it."""
        draft = seq.draft_token_ids
        if seq.params.greedy:
            a, toks = verify_greedy(draft, greedy)
        else:
            a, toks = verify_sampling(draft, sampler.probs(logits, seq.params), sampler.generator(seq, logits.device))
        self.stats.add(len(draft), a)
        self.policy.observe_acceptance(seq.seq_id, len(draft), a)
        m = seq.request.metrics
        m.spec_draft_tokens += len(draft)
        m.spec_accepted_tokens += a
        m.spec_verify_steps += 1
        return toks

    def observe(self, batch_size: int, res: RunResult, run_ns: int, plan_ns: int) -> None:
        """A decode-only step teaches the policy what a forward pass over its rows costs."""
        if not res.prefill_tokens:
            self.policy.observe_step(batch_size, (run_ns - res.draft_ns) / 1e9, res.draft_tokens,
                                     (plan_ns + res.draft_ns) / 1e9, res.draft_passes)

    @property
    def note(self) -> str:
        return f"spec {self.policy.decision}: {self.policy.reason}"

    def forget(self, seq_id: str) -> None:
        self.proposer.forget(seq_id)
        self.policy.forget(seq_id)

    def stats_dict(self) -> dict[str, Any]:
        return {"speculation_mode": self.mode, "spec_proposer": self.proposer.kind,
                **self.policy.to_dict(), **self.stats.to_dict()}
