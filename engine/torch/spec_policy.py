"""When to speculate: per step, how many draft tokens each sequence gets, from costs measured online
(step time by the number of rows in the forward pass, draft cost) and acceptance, judged by the
length of the prompt-lookup match a draft comes from.

Why the match length: a 2-token n-gram match is mostly chance (the draft is rejected at once), a
match of 8 or more tokens is the output copying a span of the prompt (the draft is mostly accepted).
One acceptance figure per request mixes the two: the chance matches before a copy starts pull it
down, and by the time the copy comes the policy no longer drafts. Keyed by match length, a long match
is drafted the first time it shows (prompt lookup costs nothing to propose; only the verify rows
cost), and chance matches stop being drafted after a few misses, with an exponential back-off, so a
workload that copies nothing pays next to nothing."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EWMA_WEIGHT = 0.25  # weight of a new measurement (model drafters' pass time)
STEP_SAMPLES = 16  # a rows bucket's step time: the lower quartile of its last this many samples
PLAIN_REFRESH_STEPS = 32  # a batch-size bucket's plain-step time is re-measured when older than this
MARGIN = 0.03  # speculate only when the model predicts at least this much more goodput
SURE_SPEEDUP = 1.3  # predicted this much, a stale plain-step time is re-measured 4x less often

# prompt-lookup match lengths, bucketed (lower bounds); bucket 0 is a model drafter's (no match)
MATCH_BUCKETS = (0, 2, 3, 4, 6, 8, 12, 16, 24)
# P(first draft accepted) by match bucket before anything is measured: fitted on the tuning half of
# the public prompt set (tests/perf/tune_spec_policy.py); measured acceptance replaces it quickly
PRIOR_FIRST = (0.5, 0.45, 0.6, 0.6, 0.65, 0.85, 0.85, 0.9, 0.9)
PRIOR_SURVIVAL = 0.7  # P(draft j + 1 accepted | drafts 1..j were), tuning half: 0.61-0.84 by position
PRIOR_IN_RUN = 0.8  # after a verify that accepted all its drafts (a copy under way)
PRIOR_WEIGHT = 2.0  # pseudo-counts of a prior
LONG_MATCH = 8  # a match this long is a copy: probed at once, and drafted even while backing off
BACKOFF_MAX = 64  # steps: after n misses in a row, a request's chance matches wait 2**n steps
FADE = 0.995  # per step with candidates but no draft: the engine-wide figures drift back to the priors
MEASURE_ALPHA = 0.25  # verify costs are measured only with a draft at least this likely to pass


def match_bucket(match: int | None) -> int:
    if not match:
        return 0
    b = 1
    while b + 1 < len(MATCH_BUCKETS) and match >= MATCH_BUCKETS[b + 1]:
        b += 1
    return b


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
class StepCost:
    """A step time: the lower quartile of the last STEP_SAMPLES measurements. Other processes on
    the machine only ever add time; an average would let one slow step decide the next dozen."""

    samples: list[float] = field(default_factory=list)
    value: float | None = None
    n: int = 0
    at_step: int = 0
    rows: float = 0.0  # mean rows of the samples (a bucket above 16 spans eight row counts)

    def add(self, x: float, step: int, rows: int = 0) -> None:
        self.rows = rows if self.n == 0 else 0.8 * self.rows + 0.2 * rows
        self.samples.append(x)
        if len(self.samples) > STEP_SAMPLES:
            del self.samples[0]
        ordered = sorted(self.samples)
        self.value = ordered[(len(ordered) - 1) // 4]
        self.n += 1
        self.at_step = step


@dataclass(slots=True)
class Acceptance:
    """A request's first-draft acceptance: decayed hit/miss counts in four states, (the last verify
    accepted all its drafts: a copy under way) x (the draft comes from a long match), with the
    engine-wide figure for the draft's match length as the prior; and its back-off."""

    decay: float = 0.9
    counts: list[list[float]] = field(default_factory=lambda: [[0.0, 0.0] for _ in range(4)])
    in_run: int = 0  # 1: the last verify accepted all its drafts (two or more)
    misses: int = 0  # verifies in a row that accepted nothing
    wait_until: int = 0  # chance (short) matches are not drafted before this step

    def state(self, match: int | None) -> int:
        return 2 * self.in_run + int(bool(match) and match >= LONG_MATCH)

    def rate(self, state: int, prior: float, weight: float = PRIOR_WEIGHT) -> float:
        hit, miss = self.counts[state]
        return (hit + weight * prior) / (hit + miss + weight)

    def seen(self, state: int) -> float:
        return sum(self.counts[state])

    def add(self, k: int, a: int, match: int | None, step: int) -> None:
        c = self.counts[self.state(match)]
        c[0] = self.decay * c[0] + (a >= 1)
        c[1] = self.decay * c[1] + (a == 0)
        self.in_run = int(a == k >= 2)  # one accepted draft is not yet a run
        self.misses = self.misses + 1 if a == 0 else 0
        self.wait_until = step + min(BACKOFF_MAX, 1 << self.misses) if self.misses else 0


@dataclass(slots=True)
class MatchAcceptance:
    """Engine-wide first-draft acceptance by (match bucket, in a run): decayed counts that serve
    as each request's prior, so a new request is judged by what the workload does; and plain
    totals by bucket for the stats."""

    decay: float = 0.99
    counts: dict[tuple[int, int], list[float]] = field(default_factory=dict)
    totals: dict[int, list[int]] = field(default_factory=dict)  # bucket -> [verifies, first hits, drafts, accepted]

    def rate(self, bucket: int, in_run: int) -> float:
        prior = max(PRIOR_FIRST[bucket], PRIOR_IN_RUN) if in_run else PRIOR_FIRST[bucket]
        hit, miss = self.counts.get((bucket, in_run), (0.0, 0.0))
        return (hit + PRIOR_WEIGHT * prior) / (hit + miss + PRIOR_WEIGHT)

    def add(self, bucket: int, in_run: int, k: int, a: int) -> None:
        c = self.counts.setdefault((bucket, in_run), [0.0, 0.0])
        c[0] = self.decay * c[0] + (a >= 1)
        c[1] = self.decay * c[1] + (a == 0)
        t = self.totals.setdefault(bucket, [0, 0, 0, 0])
        t[0] += 1
        t[1] += a >= 1
        t[2] += k
        t[3] += a

    def forget_a_little(self) -> None:
        """A step with drafts on offer and none taken: evidence fades (half-life ~140 such steps),
        so a figure ruined by a bad spell is tried again now and then, not never."""
        for c in self.counts.values():
            c[0] *= FADE
            c[1] *= FADE

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for b, (v, h, d, a) in sorted(self.totals.items()):
            label = "model" if b == 0 else (f"{MATCH_BUCKETS[b]}+" if b + 1 == len(MATCH_BUCKETS)
                                             else f"{MATCH_BUCKETS[b]}-{MATCH_BUCKETS[b + 1] - 1}")
            out[label] = {"verifies": v, "first_accepted": h / v, "drafts": d, "accepted": a}
        return out


@dataclass(slots=True)
class PositionSurvival:
    """Engine-wide, per draft position j >= 2: how often draft j is accepted once j - 1 were
    (decayed counts). Drafts are not independent coin flips: a prompt-lookup draft that starts
    right usually goes on right, so a per-token rate would undervalue long drafts."""

    reached: list[float] = field(default_factory=list)  # verifies where position j was tested
    passed: list[float] = field(default_factory=list)  # ... and accepted

    def add(self, k: int, a: int) -> None:
        while len(self.reached) < k:
            self.reached.append(PRIOR_WEIGHT)
            self.passed.append(PRIOR_WEIGHT * PRIOR_SURVIVAL)
        for j in range(1, min(a + 1, k)):  # position j + 1 was tested: j drafts before it passed
            self.reached[j] = 0.99 * self.reached[j] + 1
            self.passed[j] = 0.99 * self.passed[j] + (a > j)

    def cond(self, j: int) -> float:
        """P(draft j + 1 accepted | drafts 1..j accepted), j >= 1."""
        return self.passed[j] / self.reached[j] if j < len(self.reached) else PRIOR_SURVIVAL


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
    """mode "auto" decides from the cost model; "ngram", "self", "draft" always draft k_max.

    plan() takes candidates (sequence, most drafts, prompt-lookup match length or None)."""

    mode: str = "auto"
    k_max: int = 8
    plain: dict[int, StepCost] = field(default_factory=dict)  # batch bucket -> a plain decode step (freshness)
    # rows bucket -> seconds of a decode-only forward: verify steps (with drafts) and plain steps apart,
    # since a verify step costs more than a plain step of as many rows (and one bucket above 16
    # rows holds both: the cheaper plain samples would make drafts look free)
    rows: dict[int, StepCost] = field(default_factory=dict)
    plain_rows: dict[int, StepCost] = field(default_factory=dict)
    draft: dict[int, Ewma] = field(default_factory=dict)  # bucket -> seconds of one draft pass (model drafters)
    acceptance: dict[str, Acceptance] = field(default_factory=dict)
    survival: PositionSurvival = field(default_factory=PositionSurvival)
    by_match: MatchAcceptance = field(default_factory=MatchAcceptance)  # engine-wide
    planned_match: dict[str, int | None] = field(default_factory=dict)  # seq -> match of its drafts this step
    steps: int = 0
    probes: int = 0  # long matches drafted on sight, before any figure of their own
    decision: str = "off"
    reason: str = "no decode step yet"
    k: int = 0
    predicted_speedup: float | None = None
    last_decision: str | None = None  # the last decision taken with candidates (idle steps keep it)

    # ---- deciding ----
    def plan(self, cands: list[tuple[Any, ...]], batch_size: int, model_drafter: bool) -> dict[str, int]:
        """cands: (sequence, most drafts it can have[, match length]). Returns seq_id -> drafts."""
        self.steps += 1
        self.planned_match.clear()
        if not cands:
            self._set("off", 0, "no sequence has a draft" if batch_size else "idle", idle=True)
            return {}
        cands = [(c[0], c[1], c[2] if len(c) > 2 else None) for c in cands]
        if self.mode != "auto":
            self._set("on", self.k_max, f"speculation={self.mode}: always {self.k_max} drafts")
            return self._keep({seq.seq_id: cap for seq, cap, _ in cands}, cands)
        b = bucket(batch_size)
        plain = self.plain.get(b)
        age = self.steps - plain.at_step if plain is not None else None
        # while a copy pays by a wide margin a fresher plain step would not change the decision:
        # it is re-measured later, so a long copy is not interrupted every PLAIN_REFRESH_STEPS
        wide = self.decision == "on" and (self.predicted_speedup or 0) >= SURE_SPEEDUP
        if age is None or age > PLAIN_REFRESH_STEPS * (4 if wide else 1):
            self._set("off", 0, f"measuring a plain step at batch {batch_size}")
            return {}
        # chance matches of a request that keeps missing wait (exponential back-off); long ones never do
        live = [(seq, cap, m, self._alpha(seq, m)) for seq, cap, m in cands
                if (m or 0) >= LONG_MATCH or not self._waiting(seq)]
        if not live:
            self._set("off", 0, f"backing off: {len(cands)} sequences' drafts keep missing")
            return {}
        live.sort(key=lambda c: -c[3])
        # a long match without a figure of its own yet: drafted on sight (lookup is free, the
        # verify rows are the cost, and a copy found late is a copy lost)
        unseen = {seq.seq_id: (m, cap) for seq, cap, m, _ in live if (m or 0) >= LONG_MATCH and self._unseen_long(seq)}
        measure = self._probe(live, batch_size)
        if measure is not None or (model_drafter and b not in self.draft):
            # a k whose cost is not known yet: a losing probe costs one step
            k = measure or min(3, self.k_max)
            # the two likeliest; an unseen long match among them in full (it measures the biggest k)
            got = {seq.seq_id: cap if seq.seq_id in unseen else min(cap, k) for seq, cap, _, _ in live[:2]}
            self._set("on", k, f"measuring the verify cost at batch {batch_size} with k={k}")
            return self._keep(got, cands)
        got = self._best(live, batch_size, self.draft[b].value if model_drafter else 0.0)
        if not got:
            self.by_match.forget_a_little()
        extra = {sid: cap for sid, (m, cap) in unseen.items() if sid not in got and self._probe_pays(m, cap, batch_size)}
        if extra:
            self.probes += len(extra)
            got.update(extra)
            if self.decision == "off":
                self._set("on", max(extra.values()), f"probing {len(extra)} long prompt match(es) at batch "
                                                     f"{batch_size}: {self.reason}")
        return self._keep(got, cands)

    def _keep(self, got: dict[str, int], cands) -> dict[str, int]:
        """Remember each drafted sequence's match: its verify is filed under it."""
        for seq, _, m in cands:
            if seq.seq_id in got:
                self.planned_match[seq.seq_id] = m
        return got

    def _waiting(self, seq) -> bool:
        acc = self.acceptance.get(seq.seq_id)
        return acc is not None and self.steps < acc.wait_until

    def _unseen_long(self, seq) -> bool:
        acc = self.acceptance.get(seq.seq_id)
        return acc is None or (acc.in_run == 0 and acc.seen(1) < 0.5)

    def _probe_pays(self, match: int, cap: int, batch_size: int) -> bool:
        """Would drafting this long match pay if it were accepted as such matches are before
        anything is measured? At batch 1 on a CPU it does; at batch 32 eight more rows cost more
        than the prior promises, and a long match is left to the measured figures."""
        gain = expected_accepted(PRIOR_FIRST[match_bucket(match)], cap, self.survival)
        t_plain = self.step_time(batch_size, self.points(plain=True))
        t = self.step_time(batch_size + cap, self.points(plain=False))
        return t_plain > 0 and (batch_size + gain) / t > (1 + MARGIN) * batch_size / t_plain

    def _probe(self, live, batch_size: int) -> int | None:
        """A k to try when the cost of verifying that many drafts lies beyond every measured step
        (extrapolation, not interpolation): the curve is learned at a few points (k_max // 4,
        k_max // 2, k_max, for the two best sequences), and only with drafts likely enough to
        pass that the measurement is not itself the loss."""
        best2 = [(cap, alpha) for _, cap, _, alpha in live[:2] if alpha >= MEASURE_ALPHA]
        if not best2:
            return None
        top = max(self.rows, default=0)
        for k in sorted({max(1, self.k_max // 4), max(1, self.k_max // 2), self.k_max}):
            drafts = sum(min(k, cap) for cap, _ in best2)
            if drafts and rows_bucket(batch_size + drafts) > top:
                return k
        return None

    def points(self, plain: bool | None = None) -> list[tuple[float, float]]:
        """(rows, seconds) of the measured buckets, sorted: exact rows up to 16, the mean rows of
        the samples above (where a bucket spans eight row counts). plain: plain steps only, or
        verify steps only (either falls back on the other while it has no point); None: both,
        verify steps where a bucket has both."""
        if plain is None:
            merged = {**self.plain_rows, **self.rows}
        else:
            merged = (self.plain_rows if plain else self.rows) or (self.rows if plain else self.plain_rows)
        return sorted((m if m <= 16 or not e.rows else e.rows, e.value) for m, e in merged.items())

    def step_time(self, rows: int, pts: list[tuple[float, float]] | None = None) -> float:
        """Predicted seconds of a decode-only forward over `rows` rows: the measured point, else
        linear between the nearest measured ones (flat below, the last slope above). Above 16
        rows a GEMM on a CPU is compute-bound: a bucket's time is scaled by rows over its mean rows,
        so that drafts inside one bucket are not taken for free. pts: self.points(), when the
        caller asks for many predictions at once."""
        if pts is None:
            pts = self.points()
        if not pts:
            return 0.0
        key = rows if rows > 16 else rows_bucket(rows)
        if rows > 16:
            for m, t in pts:
                if m > 16 and rows_bucket(int(round(m))) == rows_bucket(rows):
                    return t * rows / m
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

    def _best(self, live, batch_size: int, t_draft: float) -> dict[str, int]:
        # live: (seq, cap, match, alpha), best alpha first; the cost curve once per step
        pts = self.points(plain=False)
        t_plain = self.step_time(batch_size, self.points(plain=True))
        base_rate = batch_size / t_plain
        best = (base_rate, 0, 0, t_plain)
        for k in range(1, self.k_max + 1):
            gain = drafts = 0.0
            for n, (_, cap, _, alpha) in enumerate(live, 1):
                kk = min(k, cap)
                gain += expected_accepted(alpha, kk, self.survival)
                drafts += kk
                t = self.step_time(batch_size + int(drafts), pts) + k * t_draft
                rate = (batch_size + gain) / t
                if rate > best[0]:
                    best = (rate, k, n, t)
        rate, k, n, t = best
        speedup = rate / base_rate
        if k == 0 or speedup < 1 + MARGIN:
            self._set("off", 0, f"predicted {speedup:.2f}x at batch {batch_size}: plain step {t_plain * 1e3:.1f} ms, "
                                f"first-draft acceptance {live[0][3]:.2f} at best", speedup)
            return {}
        self._set("on", k, f"predicted {speedup:.2f}x at batch {batch_size} with k={k} for {n} of {len(live)} "
                           f"sequences: plain step {t_plain * 1e3:.1f} ms, with the drafts {t * 1e3:.1f} ms"
                           + (f" (draft passes {k * t_draft * 1e3:.1f} ms)" if t_draft else ""), speedup)
        return {seq.seq_id: min(k, cap) for seq, cap, _, _ in live[:n]}

    def _alpha(self, seq, match: int | None = None) -> float:
        """P(the first draft of seq is accepted), in the state seq is in, for a draft from a match
        of this length: the request's own figure, with the engine-wide one as its prior."""
        acc = self.acceptance.get(seq.seq_id)
        in_run = acc.in_run if acc is not None else 0
        prior = self.by_match.rate(match_bucket(match), in_run)
        return acc.rate(acc.state(match), prior) if acc is not None else prior

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
        rows = batch_size + draft_tokens
        (self.rows if draft_tokens else self.plain_rows).setdefault(rows_bucket(rows), StepCost()).add(
            forward_s, self.steps, rows)
        if draft_tokens == 0:
            self.plain.setdefault(b, StepCost()).add(forward_s, self.steps, rows)
            return
        if draft_passes:
            self.draft.setdefault(b, Ewma()).add(draft_s / draft_passes, self.steps)

    def observe_acceptance(self, seq_id: str, k: int, a: int, match: int | None = None) -> None:
        """A verify of k drafts that accepted a; match: the prompt-lookup match the drafts came
        from (None: what plan() recorded for this sequence)."""
        if match is None:
            match = self.planned_match.get(seq_id)
        acc = self.acceptance.setdefault(seq_id, Acceptance())
        self.by_match.add(match_bucket(match), acc.in_run, k, a)
        acc.add(k, a, match, self.steps)
        self.survival.add(k, a)

    def forget(self, seq_id: str) -> None:
        self.acceptance.pop(seq_id, None)
        self.planned_match.pop(seq_id, None)

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
            "spec_plain_step_ms_by_rows": {str(m): e.value * 1e3 for m, e in sorted(self.plain_rows.items())},
            "spec_draft_pass_ms": {str(b): e.value * 1e3 for b, e in sorted(self.draft.items())},
            "spec_acceptance_by_match": self.by_match.to_dict(),
            "spec_long_match_probes": self.probes,
        }
