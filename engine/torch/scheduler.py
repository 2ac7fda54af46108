"""Iteration-level scheduler: every step runs all running sequences (decode or the next prefill
chunk) under a token budget, admits waiting ones into what is left, and preempts (to recompute
later) the newest sequences when KV blocks run out. Finishing is the engine's call, not ours."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from engine.torch.block_manager import BlockManager
from engine.torch.sequence import Sequence, SequenceStatus


@dataclass(slots=True)
class SchedulerConfig:
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 1024
    max_model_len: int = 4096


@dataclass(slots=True)
class ScheduledSeq:
    seq: Sequence
    num_tokens: int  # tokens computed for this sequence in this step


class Scheduler:
    def __init__(self, config: SchedulerConfig, block_manager: BlockManager):
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

    def postprocess(self, scheduled: list[ScheduledSeq], accepted: dict[str, int] | None = None) -> None:
        """After the forward pass: advance computed counts and publish newly full blocks. A verify
        step (last token + drafts) keeps only the last token and the `accepted[seq_id]` drafts
        before it is published: the rejected tokens leave token_ids, their KV slots lie past the
        computed end (overwritten later), and blocks wholly past it are freed."""
        for s in scheduled:
            seq = s.seq
            a = None if accepted is None else accepted.get(seq.seq_id)
            if a is None:
                seq.num_computed_tokens += s.num_tokens
            else:
                assert 0 <= a < s.num_tokens
                seq.num_computed_tokens += 1 + a
                del seq.token_ids[seq.num_computed_tokens :]
                self.bm.trim(seq)
            self.bm.commit_full_blocks(seq)
