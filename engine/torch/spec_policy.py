"""When to speculate: per step, how many draft tokens each sequence gets, from costs measured online
(step time by the number of rows in the forward pass, draft cost; EWMAs) and each request's acceptance."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EWMA_WEIGHT = 0.25  # weight of a new measurement
PLAIN_REFRESH_STEPS = 32  # a batch-size bucket's plain-step time is re-measured when older than this
MARGIN = 0.03  # speculate only when the model predicts at least this much more goodput


@dataclass(slots=True)
class Ewma:
    value: float | None = None
    n: int = 0
    at_step: int = 0

    def add(self, x: float, step: int) -> None:
        self.value = x if self.value is None else (1 - EWMA_WEIGHT) * self.value + EWMA_WEIGHT * x
        self.n += 1
        self.at_step = step


@dataclass(slots=True)
class Acceptance:
    """How often the first draft token is accepted: decayed hit/miss counts, kept apart for two
    states: after a verify that accepted every draft (the output is copying a span, where prompt
    lookup keeps hitting) and otherwise. One per request, and one engine-wide (slower decay) that
    serves as each request's prior, so a new or unlucky request is judged by what the workload does."""

    decay: float = 0.9
    counts: list[list[float]] = field(default_factory=lambda: [[0.0, 0.0], [0.0, 0.0]])
    in_run: int = 0  # 1: the last verify accepted all its drafts (two or more)

    def rate(self, state: int | None = None, prior: float = 0.5, weight: float = 2.0) -> float:
        hit, miss = self.counts[self.in_run if state is None else state]
        return (hit + weight * prior) / (hit + miss + weight)

    def add(self, k: int, a: int, state: int | None = None) -> None:
        c = self.counts[self.in_run if state is None else state]
        c[0] = self.decay * c[0] + (a >= 1)
        c[1] = self.decay * c[1] + (a == 0)
        self.in_run = int(a == k >= 2)  # one accepted draft is not yet a run

    def drift(self) -> None:
        """Not drafting: forget a little, so that the request is tried again."""
        c = self.counts[self.in_run]
        c[0], c[1] = 0.95 * c[0], 0.95 * c[1]


@dataclass(slots=True)
class PositionSurvival:
    """Engine-wide, per draft position j >= 2: how often draft j is accepted once j - 1 were
    (decayed counts). Drafts are not independent coin flips: a prompt-lookup draft that starts
    right usually goes on right, so a per-token rate would undervalue long drafts."""

    reached: list[float] = field(default_factory=list)  # verifies where position j was tested
    passed: list[float] = field(default_factory=list)  # ... and accepted

    def add(self, k: int, a: int) -> None:
        while len(self.reached) < k:
            self.reached.append(1.0)  # prior: 0.5
            self.passed.append(0.5)
        for j in range(1, min(a + 1, k)):  # position j + 1 was tested: j drafts before it passed
            self.reached[j] = 0.99 * self.reached[j] + 1
            self.passed[j] = 0.99 * self.passed[j] + (a > j)

    def cond(self, j: int) -> float:
        """P(draft j + 1 accepted | drafts 1..j accepted), j >= 1."""
        return self.passed[j] / self.reached[j] if j < len(self.reached) else 0.5


def rows_bucket(rows: int) -> int:
    """Rows in a forward pass, exact up to 16, then in eights: step time is not linear in them (a
    CPU GEMM costs about the same for 9 rows as for 16, twice as much as for one)."""
    return rows if rows <= 16 else 16 + 8 * -(-(rows - 16) // 8)


def bucket(batch_size: int) -> int:
    """Batch sizes 1, 2, 3-4, 5-8, ...: costs are learned per power-of-two bucket."""
    return 1 << max(0, batch_size - 1).bit_length()


def expected_accepted(first: float, k: int, survival: PositionSurvival | None = None) -> float:
    """Expected accepted drafts out of k: the first is accepted with probability `first`, each
    later one with survival.cond(j) given the ones before (`first` again without figures)."""
    total, p = 0.0, 1.0
    for j in range(k):
        p *= first if j == 0 or survival is None else survival.cond(j)
        total += p
    return total


@dataclass(slots=True)
class SpecPolicy:
    """mode "auto" decides from the cost model; "ngram", "self", "draft" always draft k_max."""

    mode: str = "auto"
    k_max: int = 8
    plain: dict[int, Ewma] = field(default_factory=dict)  # batch bucket -> a plain decode step (freshness)
    rows: dict[int, Ewma] = field(default_factory=dict)  # rows bucket -> seconds of a decode-only forward
    draft: dict[int, Ewma] = field(default_factory=dict)  # bucket -> seconds of one draft pass (model drafters)
    acceptance: dict[str, Acceptance] = field(default_factory=dict)
    survival: PositionSurvival = field(default_factory=PositionSurvival)
    first_draft: Acceptance = field(default_factory=lambda: Acceptance(decay=0.99))  # engine-wide
    steps: int = 0
    decision: str = "off"
    reason: str = "no decode step yet"
    k: int = 0
    predicted_speedup: float | None = None
    last_decision: str | None = None  # the last decision taken with candidates (idle steps keep it)

    # ---- deciding ----
    def plan(self, cands: list[tuple[Any, int]], batch_size: int, model_drafter: bool) -> dict[str, int]:
        """cands: (sequence, most drafts it can have). Returns seq_id -> drafts for this step."""
        self.steps += 1
        if not cands:
            self._set("off", 0, "no sequence has a draft" if batch_size else "idle", idle=True)
            return {}
        if self.mode != "auto":
            self._set("on", self.k_max, f"speculation={self.mode}: always {self.k_max} drafts")
            return {seq.seq_id: cap for seq, cap in cands}
        b = bucket(batch_size)
        plain = self.plain.get(b)
        if plain is None or self.steps - plain.at_step > PLAIN_REFRESH_STEPS:
            self._set("off", 0, f"measuring a plain step at batch {batch_size}")
            return {}
        probe = self._probe(cands, batch_size)
        if probe is not None or (model_drafter and b not in self.draft):
            # a few sequences, a k whose cost is not known yet: a losing probe costs one step
            k = probe or min(3, self.k_max)
            ranked = sorted(cands, key=lambda c: -self._alpha(c[0]))[:2]
            self._set("on", k, f"measuring the verify cost at batch {batch_size} with k={k}")
            return {seq.seq_id: min(cap, k) for seq, cap in ranked}
        return self._best(cands, batch_size, self.draft[b].value if model_drafter else 0.0)

    def _probe(self, cands: list[tuple[Any, int]], batch_size: int) -> int | None:
        """A k to try when the cost of verifying that many drafts lies beyond every measured step
        (extrapolation, not interpolation): the curve is learned at a few points (k_max // 4,
        k_max // 2, k_max, for the two best sequences)."""
        top = max(self.rows, default=0)
        best2 = sorted(cands, key=lambda c: -self._alpha(c[0]))[:2]
        for k in sorted({max(1, self.k_max // 4), max(1, self.k_max // 2), self.k_max}):
            drafts = sum(min(k, cap) for _, cap in best2)
            if drafts and rows_bucket(batch_size + drafts) > top:
                return k
        return None

    def step_time(self, rows: int, pts: list[tuple[int, float]] | None = None) -> float:
        """Predicted seconds of a decode-only forward over `rows` rows: the measured bucket, else
        linear between the nearest measured ones (flat below, the last slope above). pts: the
        measured points, sorted, when the caller asks for many predictions at once."""
        if pts is None:
            pts = sorted((m, e.value) for m, e in self.rows.items())
        if not pts:
            return 0.0
        key = rows_bucket(rows)
        for m, t in pts:
            if m == key:
                return t
        below = [p for p in pts if p[0] < key]
        above = [p for p in pts if p[0] > key]
        if below and above:
            (m0, t0), (m1, t1) = below[-1], above[0]
            return t0 + (t1 - t0) * (key - m0) / (m1 - m0)
        if above:
            return above[0][1]
        if len(below) >= 2:
            (m0, t0), (m1, t1) = below[-2], below[-1]
            return t1 + max(0.0, (t1 - t0) / (m1 - m0)) * (key - m1)
        return below[-1][1] * key / below[-1][0]

    def _best(self, cands, batch_size: int, t_draft: float) -> dict[str, int]:
        # once per step, not in the k x sequences loop below: acceptances and the cost curve
        ranked = sorted(((seq, cap, self._alpha(seq)) for seq, cap in cands), key=lambda c: -c[2])
        pts = sorted((m, e.value) for m, e in self.rows.items())
        t_plain = self.step_time(batch_size, pts)
        base_rate = batch_size / t_plain
        best = (base_rate, 0, 0, t_plain)
        for k in range(1, self.k_max + 1):
            gain = drafts = 0.0
            for n, (seq, cap, alpha) in enumerate(ranked, 1):
                kk = min(k, cap)
                gain += expected_accepted(alpha, kk, self.survival)
                drafts += kk
                t = self.step_time(batch_size + int(drafts), pts) + k * t_draft
                rate = (batch_size + gain) / t
                if rate > best[0]:
                    best = (rate, k, n, t)
        rate, k, n, t = best
        for seq, _, _ in ranked[n:]:  # not drafting: drift back toward the prior, so it is tried again
            acc = self.acceptance.get(seq.seq_id)
            if acc is not None:
                acc.drift()
        speedup = rate / base_rate
        if k == 0 or speedup < 1 + MARGIN:
            self._set("off", 0, f"predicted {speedup:.2f}x at batch {batch_size}: plain step {t_plain * 1e3:.1f} ms, "
                                f"first-draft acceptance {ranked[0][2]:.2f} at best", speedup)
            return {}
        self._set("on", k, f"predicted {speedup:.2f}x at batch {batch_size} with k={k} for {n} of {len(cands)} "
                           f"sequences: plain step {t_plain * 1e3:.1f} ms, with the drafts {t * 1e3:.1f} ms"
                           + (f" (draft passes {k * t_draft * 1e3:.1f} ms)" if t_draft else ""), speedup)
        return {seq.seq_id: min(k, cap) for seq, cap, _ in ranked[:n]}

    def _alpha(self, seq) -> float:
        """P(the first draft of seq is accepted), in the state seq is in."""
        acc = self.acceptance.get(seq.seq_id)
        state = acc.in_run if acc is not None else 0
        prior = self.first_draft.rate(state)
        return acc.rate(prior=prior) if acc is not None else prior

    def _set(self, decision: str, k: int, reason: str, speedup: float | None = None, idle: bool = False) -> None:
        self.decision, self.k, self.reason, self.predicted_speedup = decision, k, reason, speedup
        if not idle:
            self.last_decision = f"{decision}: {reason}"

    # ---- learning ----
    def observe_step(self, batch_size: int, forward_s: float, draft_tokens: int, draft_s: float,
                     draft_passes: int) -> None:
        """A decode-only step (no prefill rows): forward_s covers the forward pass and sampling or
        verification; draft_s the model drafter's passes, if any."""
        b = bucket(batch_size)
        self.rows.setdefault(rows_bucket(batch_size + draft_tokens), Ewma()).add(forward_s, self.steps)
        if draft_tokens == 0:
            self.plain.setdefault(b, Ewma()).add(forward_s, self.steps)
            return
        if draft_passes:
            self.draft.setdefault(b, Ewma()).add(draft_s / draft_passes, self.steps)

    def observe_acceptance(self, seq_id: str, k: int, a: int) -> None:
        acc = self.acceptance.setdefault(seq_id, Acceptance())
        self.first_draft.add(k, a, state=acc.in_run)
        acc.add(k, a)
        self.survival.add(k, a)

    def forget(self, seq_id: str) -> None:
        self.acceptance.pop(seq_id, None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "speculation": self.decision,
            "speculation_reason": self.reason,
            "spec_k": self.k,
            "spec_predicted_speedup": self.predicted_speedup,
            "speculation_last_decision": self.last_decision,
            "spec_draft_survival": [round(self.survival.cond(j), 3) for j in range(1, len(self.survival.reached))],
            # decode-only forward time by rows (batch + drafts), and model drafters' pass by batch
            "spec_step_ms_by_rows": {str(m): e.value * 1e3 for m, e in sorted(self.rows.items())},
            "spec_draft_pass_ms": {str(b): e.value * 1e3 for b, e in sorted(self.draft.items())},
        }
