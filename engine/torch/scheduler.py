"""Iteration-level scheduler: each step runs every running sequence (a decode, a verify or the next
prefill chunk) under a token budget, admits waiting ones, preempts the newest when KV runs out."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from engine.torch.block_manager import BlockManager
from engine.torch.config import TorchConfig
from engine.torch.sequence import Sequence, SequenceStatus


@dataclass(slots=True)
class ScheduledSeq:
    seq: Sequence
    num_tokens: int  # tokens computed for this sequence in this step (drafts included)


class Scheduler:
    """Preempted sequences are recomputed later; finishing a request is the engine's call."""

    def __init__(self, config: TorchConfig, block_manager: BlockManager):
        assert config.max_num_seqs and config.max_num_batched_tokens and config.max_model_len, "a resolved config"
        self.config = config
        self.bm = block_manager
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.seqs: dict[str, Sequence] = {}
        self.errors: list[tuple[str, str]] = []  # (seq_id, message) of sequences that failed alone
        self.num_preemptions = 0
        # prefix cache hit rate as vLLM reports it: hit tokens / queried tokens, last 1000 requests
        self._hit_window: deque[tuple[int, int]] = deque(maxlen=1000)

    # ---- membership ----
    def add(self, seq: Sequence) -> None:
        self.seqs[seq.seq_id] = seq
        self.waiting.append(seq)

    def free(self, seq_id: str) -> None:
        seq = self.seqs.pop(seq_id, None)
        if seq is None:
            return
        if seq.status is SequenceStatus.RUNNING:
            self.running.remove(seq)
        else:
            self.waiting.remove(seq)
        self.bm.free(seq)

    def has_unfinished(self) -> bool:
        return bool(self.seqs) or bool(self.errors)

    @property
    def prefix_cache_hit_rate(self) -> float | None:
        queried = sum(q for q, _ in self._hit_window)
        return sum(h for _, h in self._hit_window) / queried if queried else None

    # ---- one step ----
    def schedule(self) -> list[ScheduledSeq]:
        budget = self.config.max_num_batched_tokens
        out: list[ScheduledSeq] = []
        preempted = False
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            if seq.num_draft and seq.num_uncomputed != 1:
                seq.clear_draft()  # drafts extend a decode only
            n = min(seq.num_uncomputed + seq.num_draft, budget)
            if seq.num_draft >= n:  # the budget cuts the drafts short
                seq.num_draft = n - 1
                del seq.draft_token_ids[n - 1 :]
            while not self.bm.can_allocate(seq, n):
                victim = self.running[-1]
                if victim is seq and len(self.running) == 1:
                    self._fail(seq, f"the KV cache ({self.bm.num_blocks} blocks of {self.bm.block_size} "
                                    f"tokens) cannot hold this request's {seq.num_tokens} tokens")
                    break
                self._preempt(victim)
                preempted = True
                if victim is seq:
                    break
            if seq.status is not SequenceStatus.RUNNING or seq.seq_id not in self.seqs:
                break  # seq itself was preempted or failed: nothing behind it is left
            self.bm.allocate(seq, n)
            out.append(ScheduledSeq(seq, n))
            budget -= n
            i += 1
        if not preempted:
            budget = self._admit(out, budget)
        return out

    def _admit(self, out: list[ScheduledSeq], budget: int) -> int:
        bs = self.bm.block_size
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            seq = self.waiting[0]
            if seq.num_tokens >= self.config.max_model_len:
                self._fail(seq, f"prompt has {seq.num_tokens} tokens; the context window is {self.config.max_model_len}")
                continue
            if self.bm.blocks_for(seq.num_tokens + 1) > self.bm.num_blocks:
                self._fail(seq, f"the KV cache ({self.bm.num_blocks} blocks of {bs} tokens) "
                                f"cannot hold this request's {seq.num_tokens} tokens")
                continue
            hits = self.bm.match_prefix(seq)
            n = min(seq.num_tokens - len(hits) * bs, budget)
            if not self.bm.can_allocate(seq, n, hits):
                break
            self.waiting.popleft()
            self.bm.allocate_prefix(seq, hits)
            self.bm.allocate(seq, n)
            if not seq.scheduled_once:
                seq.scheduled_once = True
                m = seq.request.metrics
                m.scheduled_ns = time.perf_counter_ns()
                m.cached_prompt_tokens = len(hits) * bs
                self._hit_window.append((seq.num_prompt_tokens, len(hits) * bs))
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            out.append(ScheduledSeq(seq, n))
            budget -= n
        return budget

    def _preempt(self, seq: Sequence) -> None:
        """Drop seq's KV (its full blocks stay findable in the prefix cache) and queue it first."""
        self.running.remove(seq)
        self.bm.free(seq)
        seq.clear_draft()
        seq.status = SequenceStatus.WAITING
        seq.num_preemptions += 1
        seq.request.metrics.preemptions += 1  # recorded per request: a tail that was preempted shows it
        self.num_preemptions += 1
        self.waiting.appendleft(seq)

    def _fail(self, seq: Sequence, message: str) -> None:
        if seq.status is SequenceStatus.RUNNING:
            self.running.remove(seq)
        else:
            self.waiting.remove(seq)
        self.bm.free(seq)
        self.seqs.pop(seq.seq_id, None)
        self.errors.append((seq.seq_id, message))

    def postprocess(self, scheduled: list[ScheduledSeq], tokens: dict[str, list[int]] | None = None) -> None:
        """After the forward pass, the one place a sequence's tokens grow: advance its computed
        count, append what the step produced (`tokens[seq_id]`: the accepted drafts, then the
        sampled token), drop its drafts and publish its newly full blocks. A verify step computed
        the last token and every draft: the rejected drafts' KV slots lie past the computed end
        (overwritten later), and blocks wholly past it are freed."""
        for s in scheduled:
            seq = s.seq
            new = tokens.get(seq.seq_id) if tokens else None
            if seq.num_draft:
                assert new is not None and 0 <= len(new) - 1 <= seq.num_draft
                seq.num_computed_tokens += len(new)  # the last token and the accepted drafts
                self.bm.trim(seq)
            else:
                seq.num_computed_tokens += s.num_tokens
            if new:
                seq.token_ids.extend(new)
            seq.clear_draft()
            self.bm.commit_full_blocks(seq)
