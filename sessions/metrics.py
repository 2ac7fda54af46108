"""Latency and throughput figures of a set of requests, with `vllm bench serve`'s definitions and
field names (mean_ttft_ms, p99_itl_ms, request_goodput, ...), plus SLO checks and goodput."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable

from engine.types import RequestMetrics, percentile
from sessions.errors import SessionsError

PERCENTILES = (50, 90, 95, 99)
LATENCY_METRICS = ("ttft", "tpot", "itl", "e2el")
# per-request SLO keys (a request is "good" when it meets all given); others name summary fields
REQUEST_SLO_KEYS = ("ttft_ms", "tpot_ms", "e2el_ms")
COMPLETED_REASONS = ("stop", "length")


@dataclass(slots=True, kw_only=True)
class RequestRecord(RequestMetrics):
    """One request as a bench client or server saw it: the engine's metrics (so ttft, itl, tpot and
    e2el have one definition, in engine.types) with the request's id and outcome."""

    request_id: str
    finish_reason: str | None = None  # "stop" | "length" | "cancelled" | "error" | None (running)
    error: str | None = None
    item: str | None = None  # which workload entry it came from

    @property
    def completed(self) -> bool:
        return self.finish_reason in COMPLETED_REASONS and self.first_token_ns is not None


def _stats(name: str, values: list[float]) -> dict[str, float]:
    # vLLM reports 0 for an empty list (np.mean(x or 0)); kept for tools that read these files
    xs = values or [0.0]
    out = {
        f"mean_{name}_ms": statistics.fmean(xs),
        f"median_{name}_ms": statistics.median(xs),
        f"std_{name}_ms": statistics.pstdev(xs) if len(xs) > 1 else 0.0,  # np.std: population
    }
    for q in PERCENTILES:
        out[f"p{q}_{name}_ms"] = percentile(xs, q)
    return out


def parse_slo(text: str | None) -> dict[str, float]:
    """`ttft_ms=500,tpot_ms=50,p95_e2el_ms=3000` -> dict. Plain ttft_ms/tpot_ms/e2el_ms are
    per-request limits (goodput); a summary field name (p95_ttft_ms, mean_itl_ms...) limits that figure."""
    if not text:
        return {}
    out: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep:
            raise SessionsError(f"bad SLO {part!r}: write it as name=milliseconds, e.g. ttft_ms=500")
        try:
            v = float(value)
        except ValueError:
            raise SessionsError(f"bad SLO {part!r}: {value.strip()!r} is not a number") from None
        if not math.isfinite(v) or v <= 0:
            raise SessionsError(f"bad SLO {part!r}: the limit must be a positive number of milliseconds")
        if key not in REQUEST_SLO_KEYS and key not in _summary_keys():
            known = ", ".join(REQUEST_SLO_KEYS)
            raise SessionsError(f"unknown SLO {key!r}: use {known}, or a summary field like p95_ttft_ms")
        out[key] = v
    return out


def _summary_keys() -> set[str]:
    keys = set()
    for m in LATENCY_METRICS:
        keys |= set(_stats(m, []))
    return keys


def meets_request_slo(r: RequestRecord, slo: dict[str, float]) -> bool:
    if not r.completed:
        return False
    # vLLM counts a one-token request's tpot as 0 when judging goodput
    values = {"ttft_ms": r.ttft_ms, "tpot_ms": r.tpot_ms or 0.0, "e2el_ms": r.e2el_ms}
    return all(values[k] <= v for k, v in slo.items() if k in REQUEST_SLO_KEYS)


def compute_metrics(records: Iterable[RequestRecord], duration_s: float, slo: dict[str, float] | None = None) -> dict[str, Any]:
    """The summary `vllm bench serve --save-result` writes, for the completed requests."""
    records = list(records)
    done = [r for r in records if r.completed]
    ttfts = [r.ttft_ms for r in done]
    tpots = [r.tpot_ms for r in done if r.tpot_ms is not None]
    itls = [x for r in done for x in r.itl_ms]
    e2els = [r.e2el_ms for r in done]
    total_in = sum(r.prompt_tokens for r in done)
    total_out = sum(r.output_tokens for r in done)
    dur = duration_s if duration_s and duration_s > 0 else float("nan")
    out: dict[str, Any] = {
        "duration": duration_s,
        "num_prompts": len(records),
        "completed": len(done),
        "failed": sum(1 for r in records if r.finish_reason == "error"),
        "cancelled": sum(1 for r in records if r.finish_reason in ("cancelled", None)),
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": len(done) / dur,
        "request_goodput": None,
        "output_throughput": total_out / dur,
        "total_token_throughput": (total_in + total_out) / dur,
        "max_concurrent_requests": max_concurrency(records),
    }
    for name, values in zip(LATENCY_METRICS, (ttfts, tpots, itls, e2els)):
        out.update(_stats(name, values))
    request_slo = {k: v for k, v in (slo or {}).items() if k in REQUEST_SLO_KEYS}
    if request_slo:
        good = sum(1 for r in done if meets_request_slo(r, request_slo))
        out["request_goodput"] = good / dur
        out["good_requests"] = good
    for k, v in out.items():
        if isinstance(v, float) and math.isnan(v):
            out[k] = None
    return out


def max_concurrency(records: list[RequestRecord]) -> int:
    """Most requests in flight at once (arrival to finish)."""
    edges = []
    for r in records:
        if r.finished_ns is not None:
            edges.append((r.arrival_ns, 1))
            edges.append((r.finished_ns, -1))
    best = cur = 0
    for _, d in sorted(edges, key=lambda e: (e[0], e[1])):
        cur += d
        best = max(best, cur)
    return best


@dataclass(slots=True)
class SloCheck:
    name: str
    limit_ms: float
    passed: bool
    detail: str


def check_slo(records: list[RequestRecord], summary: dict[str, Any], slo: dict[str, float]) -> list[SloCheck]:
    """One check per SLO key: every request meets a per-request limit (errors and cancelled requests
    miss it); a summary field is at most its limit."""
    checks = []
    if not slo:
        return checks
    n = len(records)
    for key, limit in slo.items():
        if key in REQUEST_SLO_KEYS:
            misses = [r for r in records if not meets_request_slo(r, {key: limit})]
            detail = f"{n - len(misses)}/{n} requests within {key} <= {limit:g}"
            checks.append(SloCheck(key, limit, not misses and n > 0, detail))
        else:
            value = summary.get(key)
            ok = value is not None and summary.get("completed", 0) > 0 and value <= limit
            shown = "n/a" if value is None else f"{value:.2f}"
            checks.append(SloCheck(key, limit, ok, f"{key} = {shown} (limit {limit:g})"))
    return checks


# ---- comparing two runs ----

def mann_whitney_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation, tie-corrected, with
    continuity correction); None below three samples a side."""
    if len(a) < 3 or len(b) < 3:
        return None
    from scipy.stats import mannwhitneyu  # about a second to import: only when runs are compared

    # asymptotic always: scipy's default goes exact for small samples, another judgement
    return float(mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue)


def per_request_values(records: list[RequestRecord], metric: str) -> list[float]:
    done = [r for r in records if r.completed]
    if metric == "itl":
        return [x for r in done for x in r.itl_ms]
    vals = [getattr(r, f"{metric}_ms") for r in done]
    return [v for v in vals if v is not None]


def compare(base: dict[str, Any], other: dict[str, Any], base_records: list[RequestRecord],
            other_records: list[RequestRecord], alpha: float = 0.05) -> dict[str, Any]:
    """Deltas other - base for every numeric summary field; each latency family gets a
    Mann-Whitney p-value, and a difference with p >= alpha is called within noise."""
    deltas: dict[str, Any] = {}
    for k, v in base.items():
        w = other.get(k)
        if isinstance(v, (int, float)) and isinstance(w, (int, float)) and not isinstance(v, bool):
            pct = (w - v) / v * 100 if v else None
            deltas[k] = {"base": v, "other": w, "delta": w - v, "delta_pct": pct}
    noise: dict[str, Any] = {}
    for m in LATENCY_METRICS:
        p = mann_whitney_p(per_request_values(base_records, m), per_request_values(other_records, m))
        if p is None:
            verdict = "too few samples to judge"
        elif p >= alpha:
            verdict = "within noise"
        else:
            faster = statistics.median(per_request_values(other_records, m)) < statistics.median(
                per_request_values(base_records, m))
            verdict = "faster" if faster else "slower"
        noise[m] = {"p_value": p, "verdict": verdict}
    return {"deltas": deltas, "noise": noise, "alpha": alpha}
