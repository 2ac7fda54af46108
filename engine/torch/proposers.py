"""Draft proposers for speculative decoding: prompt lookup (n-gram match over prompt + output), a
draft model with the same tokenizer, and self-speculation (the target's first layers + LM head)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.torch.scheduler import ScheduledSeq
from engine.torch.sequence import Sequence
from engine.types import Request, RequestMetrics, SamplingParams

if TYPE_CHECKING:
    from engine.torch.model_runner import ModelRunner


MATCH_CAP = 32  # matches are measured up to this many tokens: longer ones are all "copying"


class NgramProposer:
    """Prompt lookup: find the latest earlier occurrence of the sequence's last n tokens (n from
    max_n down to min_n) and propose the tokens that followed it. Cheap enough to run before the
    scheduler, so the policy sees how many drafts each sequence really has."""

    kind = "ngram"
    needs_forward = False

    def __init__(self, max_n: int = 3, min_n: int = 2):
        assert 1 <= min_n <= max_n
        self.max_n, self.min_n = max_n, min_n
        # per sequence: n -> {n-gram: index of the token after its latest occurrence}, and how far
        # token_ids were indexed (only committed tokens, never drafts)
        self._index: dict[str, tuple[dict[int, dict[tuple[int, ...], int]], list[int]]] = {}

    def propose(self, seq: Sequence, k: int) -> list[int]:
        return self.propose_match(seq, k)[0]

    def propose_match(self, seq: Sequence, k: int) -> tuple[list[int], int]:
        """The draft and the length of the match it came from: how many of the sequence's last
        tokens equal the tokens before the earlier occurrence (at least the n-gram, at most
        MATCH_CAP). A long match is a span being copied; a 2-gram match is mostly chance, so the
        auto policy judges drafts by it."""
        tokens = seq.token_ids
        tables, done = self._index.setdefault(seq.seq_id, ({n: {} for n in range(self.min_n, self.max_n + 1)}, [0]))
        end = len(tokens) - 1  # an n-gram ending at j < end has a known continuation at j + 1
        for j in range(max(done[0], self.min_n - 1), end):
            for n, table in tables.items():
                if j + 1 >= n:
                    table[tuple(tokens[j + 1 - n : j + 1])] = j + 1
        done[0] = max(done[0], end)
        for n in range(self.max_n, self.min_n - 1, -1):
            if len(tokens) < n:
                continue
            start = tables[n].get(tuple(tokens[-n:]))
            if start is not None:
                m, last = n, len(tokens) - 1
                while m < MATCH_CAP and start - 1 - m >= 0 and tokens[start - 1 - m] == tokens[last - m]:
                    m += 1
                return tokens[start : start + k], m
        return [], 0

    def forget(self, seq_id: str) -> None:
        self._index.pop(seq_id, None)


class SelfDrafter:
    """Self-speculation: k greedy steps of the target's first `num_layers` layers plus its LM head,
    batched over the speculating sequences, in the target's own KV cache (blocks for the drafts are
    already allocated by the scheduler for the verify step)."""

    kind = "self"
    needs_forward = True

    def __init__(self, runner: "ModelRunner", num_layers: int):
        self.runner = runner
        self.num_layers = num_layers

    def draft(self, seqs: list[Sequence]) -> None:
        """Fill seq.draft_token_ids with seq.num_draft tokens for each of seqs (all in decode)."""
        computed = {s.seq_id: s.num_computed_tokens for s in seqs}
        try:
            active = [s for s in seqs if s.num_draft > 0]
            while active:
                # prepare() packs rows in its own order (by length): follow the order it returns
                order, logits = self.runner.run_first_layers([ScheduledSeq(s, 1) for s in active], self.num_layers)
                for s, tok in zip(order, logits.argmax(dim=-1).tolist()):
                    s.draft_token_ids.append(tok)  # the next pass reads it as its input
                    s.num_computed_tokens += 1
                active = [s for s in active if len(s.draft_token_ids) < s.num_draft]
        finally:
            for s in seqs:
                s.num_computed_tokens = computed[s.seq_id]

    def forget(self, seq_id: str) -> None:
        pass


class DraftModelDrafter:
    """A smaller model with the same tokenizer, with its own runner and KV cache. Each target
    sequence has a shadow sequence there; its computed tokens are cut back to what the target
    committed (rejected drafts), and its missing tokens are computed in the first draft pass."""

    kind = "draft"
    needs_forward = True

    def __init__(self, runner: "ModelRunner", block_manager, name: str):
        self.runner = runner
        self.bm = block_manager
        self.name = name
        self.shadows: dict[str, Sequence] = {}

    def _shadow(self, seq: Sequence) -> Sequence:
        sh = self.shadows.get(seq.seq_id)
        if sh is None:
            req = Request(seq.seq_id, "", SamplingParams(max_tokens=1, temperature=0), [0], RequestMetrics(0))
            sh = self.shadows[seq.seq_id] = Sequence(req)
        sh.token_ids = list(seq.token_ids)
        sh.num_computed_tokens = min(sh.num_computed_tokens, seq.num_computed_tokens)
        self.bm.trim(sh)
        return sh

    def draft(self, seqs: list[Sequence]) -> None:
        pairs = []
        for s in seqs:
            if s.num_draft <= 0:
                continue
            sh = self._shadow(s)
            # room for the missing tokens and the drafts; if the draft pool is full, this
            # sequence drafts nothing (its verify rows get the last token as filler)
            if self.bm.can_allocate(sh, sh.num_uncomputed + s.num_draft):
                self.bm.allocate(sh, sh.num_uncomputed + s.num_draft)
                pairs.append((s, sh))
        while pairs:
            batch = [ScheduledSeq(sh, sh.num_uncomputed) for _, sh in pairs]
            sampled = self.runner.run(batch).tokens
            for (s, sh), b in zip(pairs, batch):
                sh.num_computed_tokens += b.num_tokens
                (tok,) = sampled[sh.seq_id]
                sh.token_ids.append(tok)
                s.draft_token_ids.append(tok)
            pairs = [(s, sh) for s, sh in pairs if len(s.draft_token_ids) < s.num_draft]
        for s in seqs:  # filler for drafts that could not be made: verified (and mostly rejected)
            while len(s.draft_token_ids) < s.num_draft:
                s.draft_token_ids.append(s.token_ids[-1])

    def forget(self, seq_id: str) -> None:
        sh = self.shadows.pop(seq_id, None)
        if sh is not None:
            self.bm.free(sh)
