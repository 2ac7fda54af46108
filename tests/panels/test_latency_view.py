"""The "where the p95 goes" renderer on a hand-built report with the fields sessions.latency's
LatencyReport has; only while that module is absent (its own tests then cover the real one)."""
import importlib.util
from dataclasses import dataclass, field

import pytest

from panels.latency_view import latency_text

pytestmark = pytest.mark.skipif(importlib.util.find_spec("sessions.latency") is not None,
                                reason="sessions.latency is installed: its report is rendered in the app tests")


@dataclass
class Stage:
    name: str
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    share_of_p95: float


@dataclass
class Budget:
    metric: str
    limit_ms: float
    value_ms: float
    ok: bool
    stage: str | None = None


@dataclass
class Tail:
    feature: str
    tail_value: float
    rest_value: float
    p_value: float | None
    significant: bool
    note: str = ""


@dataclass
class Report:
    kind: str
    ref: str
    title: str
    n: int
    e2el: Stage
    stages: list = field(default_factory=list)
    budgets: list = field(default_factory=list)
    tail: list = field(default_factory=list)

    def verdict(self) -> str:
        return "p95 is mostly queue_time"


def test_stages_budgets_and_tail_factors_are_shown():
    r = Report("bench", "abc", "bench chat x8", 8, Stage("e2el", 100, 300, 320, 150, 1.0),
               [Stage("queue_time", 10, 150, 160, 40, 0.5), Stage("decode", 50, 90, 95, 60, 0.3)],
               [Budget("e2el_p95_ms", 250, 300, False, "queue_time"), Budget("ttft_p95_ms", 500, 200, True)],
               [Tail("prompt_tokens", 900, 120, 0.004, True, "long prompts wait"), Tail("item", 1, 1, None, False)])
    text = latency_text(r).plain
    lines = text.splitlines()
    queue = next(line for line in lines if "queue_time" in line and "%" in line)
    assert queue.count("█") == 12 and "50.0%" in queue  # half of a 24-cell bar
    assert "FAIL e2el_p95_ms 300.0 ms, limit 250.0 ms (most in queue_time)" in text
    assert "PASS ttft_p95_ms" in text
    assert "⚠ prompt_tokens: tail 900 vs rest 120 p=0.004 · long prompts wait" in text
    assert lines[-1] == "p95 is mostly queue_time"
