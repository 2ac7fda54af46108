"""What the slowest requests (or agent steps) have in common against the rest: each feature's
tail median against the rest's, a Mann-Whitney U or Fisher exact test, Holm-corrected over the features."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

ALPHA = 0.05
MIN_TAIL = 3  # below this a test says nothing; the factor reads "too few"
# a tail this small is tested against the exact distribution of its rank sum: the normal
# approximation, with the ties counts and token lengths have, puts three requests at p=1e-14
EXACT_MAX_TAIL = 12
EXACT_MAX_N = 400


@dataclass(slots=True)
class TailFactor:
    """One feature, tail against rest. `tail_value`/`rest_value` are medians (a share in [0, 1] for
    a binary feature); `p_value` is Holm-adjusted over the features tested, None when untested;
    `p_raw` is the test's own p-value."""

    feature: str
    tail_value: float
    rest_value: float
    p_value: float | None
    significant: bool
    note: str
    binary: bool = False
    test: str = ""  # "mann-whitney" | "fisher" | ""
    p_raw: float | None = None
    n_tail: int = 0
    n_rest: int = 0

    @property
    def ratio(self) -> float | None:
        """tail / rest; None when the rest is zero."""
        if not self.rest_value:
            return None
        return self.tail_value / self.rest_value

    def to_dict(self) -> dict:
        return {"feature": self.feature, "tail_value": self.tail_value, "rest_value": self.rest_value,
                "ratio": self.ratio, "p_value": self.p_value, "p_raw": self.p_raw, "significant": self.significant,
                "binary": self.binary, "test": self.test, "n_tail": self.n_tail, "n_rest": self.n_rest,
                "note": self.note}


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment, in the input order: the k-th smallest of m p-values is
    multiplied by (m - k + 1), and adjusted values never decrease along the sorted order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [1.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p_values[i]))
        out[i] = running
    return out


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else 0.0


def _test(tail: list[float], rest: list[float], binary: bool) -> float:
    from scipy.stats import fisher_exact, mannwhitneyu  # about a second to import: only when a tail is judged

    if binary:
        a = sum(1 for x in tail if x)
        c = sum(1 for x in rest if x)
        return float(fisher_exact([[a, len(tail) - a], [c, len(rest) - c]], alternative="two-sided").pvalue)
    if len(tail) <= EXACT_MAX_TAIL and len(tail) + len(rest) <= EXACT_MAX_N:
        return rank_sum_exact_p(tail, rest)
    return float(mannwhitneyu(tail, rest, alternative="two-sided", method="asymptotic").pvalue)


def rank_sum_exact_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test from the exact permutation distribution of
    a's rank sum, ties kept as midranks: the share of all ways to pick len(a) of the values whose
    rank sum lies at least as far from its mean as a's. Counted by a knapsack over doubled
    midranks (integers), so it costs len(a) x (sum of ranks) per value: for small `a` only."""
    import numpy as np
    from scipy.stats import rankdata

    k, n = len(a), len(a) + len(b)
    r2 = np.rint(2 * rankdata(a + b)).astype(np.int64)
    top = int(np.sort(r2)[-k:].sum())
    ways = np.zeros((k + 1, top + 1))
    ways[0, 0] = 1.0
    for v in r2:
        # rows are subset sizes, columns rank sums; numpy buffers the overlapping operands, so
        # each value is used at most once (0/1 knapsack)
        ways[1:, v:] += ways[:-1, : top + 1 - v]
    dist = ways[k]
    mean = k * (n + 1)  # doubled, as the ranks
    far = abs(int(r2[:k].sum()) - mean)
    sums = np.arange(top + 1)
    p = dist[np.abs(sums - mean) >= far - 1e-9].sum() / dist.sum()
    return float(min(1.0, p))


def attribute_tail(in_tail: list[bool], features: dict[str, list[float | None]], binary: set[str] | None = None,
                   alpha: float = ALPHA, min_tail: int = MIN_TAIL, unit: str = "request") -> list[TailFactor]:
    """One TailFactor per feature, in the order given. A value of None is "not recorded" for that
    unit: such units leave the feature's test; a feature recorded for none of them says so. A
    feature with one value everywhere is not tested (and does not count in the correction)."""
    binary = binary or set()
    n_tail_all = sum(in_tail)
    out: list[TailFactor] = []
    tested: list[int] = []
    raw: list[float] = []
    for name, values in features.items():
        assert len(values) == len(in_tail), name
        is_bin = name in binary
        tail = [float(v) for v, t in zip(values, in_tail) if t and v is not None]
        rest = [float(v) for v, t in zip(values, in_tail) if not t and v is not None]
        tv = (sum(1 for x in tail if x) / len(tail) if tail else 0.0) if is_bin else _median(tail)
        rv = (sum(1 for x in rest if x) / len(rest) if rest else 0.0) if is_bin else _median(rest)
        f = TailFactor(name, tv, rv, None, False, "", binary=is_bin, n_tail=len(tail), n_rest=len(rest))
        if not tail and not rest:
            f.note = "not recorded"
        elif n_tail_all < min_tail:
            f.note = f"too few: {n_tail_all} tail {unit}(s), a test needs {min_tail}"
        elif len(tail) < min_tail or len(rest) < min_tail:
            f.note = f"too few: recorded for {len(tail)} tail and {len(rest)} other {unit}(s)"
        elif len(set(tail + rest)) == 1:
            f.note = f"the same in every {unit}"
        else:
            f.test = "fisher" if is_bin else "mann-whitney"
            p = _test(tail, rest, is_bin)
            f.p_raw = p if math.isfinite(p) else 1.0
            tested.append(len(out))
            raw.append(f.p_raw)
        out.append(f)
    for i, p in zip(tested, holm(raw)):
        f = out[i]
        f.p_value = p
        f.significant = p < alpha
        f.note = ("differs" if f.significant else "within noise") + f" (Holm over {len(raw)} feature(s))"
    return out


# how a verdict names a feature that sets the tail apart: (more, fewer)
PHRASES: dict[str, tuple[str, str]] = {
    "prompt_tokens": ("longer prompts", "shorter prompts"),
    "output_tokens": ("longer outputs", "shorter outputs"),
    "cached_prompt_tokens": ("more cached prompt tokens", "fewer cached prompt tokens"),
    "preemptions": ("more preemptions", "fewer preemptions"),
    "batch_at_arrival": ("busier batches at arrival", "emptier batches at arrival"),
    "speculation": ("speculation on more often", "speculation on less often"),
    "tool_ms": ("longer tool time", "shorter tool time"),
    "tool_calls": ("more tool calls", "fewer tool calls"),
}


def describe(f: TailFactor, unit: str = "request") -> str:
    """"tail requests have 9.8x longer prompts (p=0.002)"."""
    more = f.tail_value > f.rest_value
    phrase = PHRASES.get(f.feature, (f"higher {f.feature}", f"lower {f.feature}"))[0 if more else 1]
    p = "" if f.p_value is None else f" (p={f.p_value:.2g})"
    if f.binary:
        return f"tail {unit}s have {phrase} ({f.tail_value:.0%} vs {f.rest_value:.0%}){p}"
    r = f.ratio
    if r is None or r == 0:
        return f"tail {unit}s have {phrase} (median {f.tail_value:g} vs {f.rest_value:g}){p}"
    factor = r if r >= 1 else 1 / r
    return f"tail {unit}s have {factor:.1f}x {phrase}{p}"
