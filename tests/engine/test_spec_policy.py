"""The auto speculation policy on a synthetic cost model: drafts from a long prompt match are taken
at once (even after a spell of chance misses), and when nothing is ever accepted drafting stops
within a few steps and costs under 3% over the whole run; prompt lookup reports match lengths."""
from __future__ import annotations

import pytest

from engine.torch.spec_policy import LONG_MATCH, SpecPolicy, match_bucket


class S:
    """What the policy reads of a sequence."""

    def __init__(self, sid: str):
        self.seq_id = sid


def cpu_cost(rows: int) -> float:
    """A CPU-like decode step: 20 ms for one row, +1 ms a further row (9 rows: 1.4x a plain step)."""
    return 0.020 + 0.001 * (rows - 1)


def drive(pol: SpecPolicy, seqs: list[S], steps: int, match, accept, cost=cpu_cost):
    """Run `steps` decode steps: match(i, t) the prompt-lookup match of sequence i at step t (0 =
    no draft on offer), accept(i, t, k) how many of its k drafts the target accepts. Returns
    (seconds per output token / a plain step's, drafts per step, accepted in all)."""
    spent = plain = 0.0
    tokens = accepted = 0
    drafts: list[int] = []
    for t in range(steps):
        cands = [(s, 8, match(i, t)) for i, s in enumerate(seqs) if match(i, t)]
        got = pol.plan(cands, len(seqs), False)
        d = sum(got.values())
        drafts.append(d)
        step = cost(len(seqs) + d)
        pol.observe_step(len(seqs), step, d, 0.0, 0)
        for i, s in enumerate(seqs):
            if s.seq_id in got:
                a = accept(i, t, got[s.seq_id])
                pol.observe_acceptance(s.seq_id, got[s.seq_id], a)
                accepted += a
        spent += step
        plain += cost(len(seqs))
        tokens += len(seqs)
    tokens += accepted
    return (spent / tokens) / (plain / (steps * len(seqs))), drafts, accepted


@pytest.mark.parametrize("batch", [1, 8])
def test_nothing_accepted_stops_drafting_fast_and_costs_under_3_percent(batch):
    pol = SpecPolicy("auto", k_max=8)
    seqs = [S(f"r{i}") for i in range(batch)]
    # chance 2-gram matches nearly every step, and now and then a long one: none is ever accepted
    match = lambda i, t: (LONG_MATCH + 2) if (t + 7 * i) % 50 == 49 else (2 if (t + i) % 5 else 0)  # noqa: E731
    overhead, drafts, accepted = drive(pol, seqs, 400, match, lambda i, t, k: 0)
    assert accepted == 0
    assert overhead < 1.03, f"{overhead:.3f}x the plain cost per token"
    first = next(t for t, d in enumerate(drafts) if d)
    assert sum(1 for d in drafts[first:first + 30] if d) <= 12  # stops within a few steps
    late = [t for t, d in enumerate(drafts) if d and t >= 100]
    # later drafts: only re-probes (long matches, faded figures), each a single step
    assert len(late) <= 300 // 25
    assert sum(1 for d in drafts[-100:] if d) <= 4


def test_a_long_prompt_match_is_drafted_at_once_even_after_chance_misses():
    """The rename prompt: the output starts with chance 2-gram matches that miss; then it copies a
    function from the prompt. The first long match is drafted in full on sight, and the copy goes
    on being drafted while it is accepted."""
    pol = SpecPolicy("auto", k_max=8)
    r = S("r")
    pol.observe_step(1, cpu_cost(1), 0, 0.0, 0)  # a plain step measured; no verify cost known yet
    for _ in range(30):  # a spell of chance misses, engine-wide and for this request
        pol.observe_acceptance("r", 8, 0, match=2)
    assert pol.plan([(r, 8, 2)], 1, False) == {}  # a chance match: not worth a verify now
    got = pol.plan([(r, 8, 12)], 1, False)
    assert got == {"r": 8}
    pol.observe_step(1, cpu_cost(9), 8, 0.0, 0)
    pol.observe_acceptance("r", 8, 8)
    for _ in range(10):  # the copy goes on: match grows, drafts keep being taken
        got = pol.plan([(r, 8, 20)], 1, False)
        assert got == {"r": 8}, pol.reason
        pol.observe_step(1, cpu_cost(9), 8, 0.0, 0)
        pol.observe_acceptance("r", 8, 8)
    assert pol.to_dict()["spec_acceptance_by_match"]["16-23"]["first_accepted"] == 1.0


def test_a_copying_workload_keeps_most_of_the_fixed_mode_speedup():
    """Copies from long matches accepted in full, chance matches missed: auto drafts the copies
    and not the chance matches, so it is faster per token than always drafting."""
    def match(i, t):
        return 20 if (t // 10) % 2 else 2  # ten copy steps, ten chance steps, ...

    def accept(i, t, k):
        return k if match(i, t) >= LONG_MATCH else 0

    auto, _, acc_auto = drive(SpecPolicy("auto", k_max=8), [S("r")], 200, match, accept)
    fixed, _, acc_fixed = drive(SpecPolicy("ngram", k_max=8), [S("r")], 200, match, accept)
    assert acc_auto >= 0.9 * acc_fixed
    assert auto <= fixed * 1.01 and auto < 0.5


def test_backoff_doubles_and_a_hit_resets_it():
    pol = SpecPolicy("auto", k_max=8)
    for n in range(1, 5):
        pol.steps += 1
        pol.observe_acceptance("r", 8, 0, match=2)
        acc = pol.acceptance["r"]
        assert acc.misses == n and acc.wait_until == pol.steps + 2 ** n
    pol.observe_acceptance("r", 8, 3, match=2)
    assert pol.acceptance["r"].misses == 0 and pol.acceptance["r"].wait_until == 0


def test_match_buckets():
    assert [match_bucket(m) for m in (None, 0, 2, 3, 5, 8, 11, 12, 40)] == [0, 0, 1, 2, 3, 5, 5, 6, 8]


def test_prompt_lookup_reports_the_match_length():
    torch = pytest.importorskip("torch")  # noqa: F841  (the proposer module imports the engine's torch parts)
    from engine.torch.proposers import NgramProposer

    class Seq:
        seq_id = "s"

        def __init__(self, ids):
            self.token_ids = ids

    prompt = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    p = NgramProposer(3, 2)
    assert p.propose_match(Seq(prompt + [99, 98]), 4) == ([], 0)
    p.forget("s")
    draft, m = p.propose_match(Seq(prompt + [1, 7, 8, 9, 10, 11]), 3)
    assert draft == [12, 13, 14] and m == 5  # 7 8 9 10 11 matched; 1 != 6 ends it
    p.forget("s")
    draft, m = p.propose_match(Seq(prompt + [50, 8, 9]), 4)
    assert draft == [10, 11, 12, 13] and m == 2


def test_drafts_inside_one_rows_bucket_are_not_free_above_16_rows():
    """Batch 20 plus 3 drafts falls in the same 17-24 rows bucket as batch 20 alone; on a CPU the
    GEMM is compute-bound there, so the prediction grows with the rows, not per bucket."""
    pol = SpecPolicy("auto", k_max=8)
    for _ in range(4):
        pol.observe_step(20, 0.100, 0, 0.0, 0)
    assert pol.step_time(20) == pytest.approx(0.100)
    assert pol.step_time(23) == pytest.approx(0.100 * 23 / 20)
    pol.observe_acceptance("a", 8, 0, match=2)  # chance matches that pass a third of the time
    for _ in range(2):
        pol.observe_acceptance("a", 8, 1, match=2)
    cands = [(S(f"r{i}"), 8, 2) for i in range(3)]
    got = pol._best([(s, cap, m, 0.3) for s, cap, m in cands], 20, 0.0)
    assert got == {} and "predicted" in pol.reason
