"""Sentry-style detector of cold-start cost, per trace: model, container or sandbox start spans, and a
first call much slower than the calls after it (an LLM's first request, a tool's first run)."""
from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

from sessions.traces.model import Span, Trace
from sessions.traces.nplus1 import Finding, fingerprint

_START_NAME = re.compile(
    r"(cold[ _.-]?start|model[ _.-]?load|load[ _.-]?model|loading[ _.-]?model|container[ _.-]?(start|create|pull)|"
    r"image[ _.-]?pull|runtime[ _.-]?(init|start|boot)|sandbox[ _.-]?(start|create|init)|warm[ _.-]?up|"
    r"engine[ _.-]?(init|load|start)|kernel[ _.-]?(start|init))", re.I)


@dataclass(slots=True)
class ColdStartSettings:
    min_calls: int = 3  # calls of one kind needed to compare the first with the rest
    min_ratio: float = 2.0  # first call / median of the later ones
    min_excess_ms: float = 500.0  # first call minus that median
    min_start_ms: float = 100.0  # a start span shorter than this is not reported


def is_start_span(s: Span) -> bool:
    a = s.attributes
    return a.get("faas.coldstart") in (True, "true") or (bool(_START_NAME.search(s.name)) and s.kind in ("other", "agent"))


class ColdStartDetector:
    """One finding per trace that pays a cold start: the start spans it records, and every group of
    calls (LLM calls by model, tool calls by tool) whose first member stands out from the rest."""

    kind = "cold_start"

    def __init__(self, settings: ColdStartSettings | None = None):
        self.settings = settings or ColdStartSettings()

    def detect(self, trace: Trace) -> list[Finding]:
        st = self.settings
        starts = [s for s in trace.spans if is_start_span(s) and s.duration is not None and s.duration / 1e6 >= st.min_start_ms]
        groups: dict[str, list[Span]] = {}
        for s in sorted(trace.spans, key=lambda s: (s.start_ns is None, s.start_ns or 0, s.seq)):
            if s.duration is None:
                continue
            if s.kind == "llm":
                groups.setdefault(f"llm {s.attributes.get('gen_ai.request.model') or ''}".strip(), []).append(s)
            elif s.kind == "tool":
                groups.setdefault(f"tool {s.tool_name or s.name}", []).append(s)
        slow_first = []
        for name, calls in groups.items():
            if len(calls) < st.min_calls:
                continue
            first = calls[0].duration / 1e6
            rest = statistics.median(c.duration / 1e6 for c in calls[1:])
            if first - rest >= st.min_excess_ms and (rest <= 0 or first / rest >= st.min_ratio):
                slow_first.append((name, calls, first, rest))
        if not starts and not slow_first:
            return []
        start_ms = sum(s.duration for s in starts) / 1e6
        excess = sum(first - rest for _, _, first, rest in slow_first)
        parts = [f"{s.name} {s.duration / 1e6:.1f} ms" for s in starts]
        parts += [f"first {name} call {first:.1f} ms vs {rest:.1f} ms median of the next {len(calls) - 1}"
                  for name, calls, first, rest in slow_first]
        spans = [s.span_id for s in starts] + [calls[0].span_id for _, calls, _, _ in slow_first]
        subject = " + ".join([s.name for s in starts] + [name for name, *_ in slow_first])
        method = (f"start spans {start_ms:.1f} ms plus the first calls' excess over later calls {excess:.1f} ms: "
                  f"what a warm pool or a kept-alive model would save")
        signature = " + ".join(sorted({_START_NAME.sub("start", s.name) for s in starts} | {n for n, *_ in slow_first}))
        return [Finding(self.kind, trace.trace_id, subject, len(spans), start_ms + sum(f for *_, f, _ in slow_first),
                        start_ms + excess, method, spans, fingerprint(self.kind, "cold start", signature), signature,
                        "unknown", "full" if all(s.start_ns is not None for s in starts) else "durations", "; ".join(parts))]
