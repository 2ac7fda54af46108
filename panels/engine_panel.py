"""The engine panel: per-step figures as sparklines (decode tokens/s, batch size, share of the
hardware roofline) and the latest KV-cache and queue state, fed from StepEvents."""
from __future__ import annotations

from collections import deque
from typing import Any, Iterable

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Label, Sparkline, Static

from engine.types import StepEvent


def _f(x: float | None, fmt: str = ".0f", unit: str = "") -> str:
    return "–" if x is None else f"{x:{fmt}}{unit}"


# cold-start stages in the order they happen, by the names Engine.stats()["cold_start_ms"] uses
COLD_STAGES = (("convert", "convert"), ("load", "load"), ("kv_cache", "KV cache"), ("bandwidth", "bandwidth"),
               ("graph_capture", "graphs"), ("first_token", "first token"))


def cold_start_line(stages: dict[str, float] | None) -> str:
    """"cold start 2.4 s: load 1.9 s · KV cache 12 ms · ..." (stages absent from `stages` left out)."""
    if not stages:
        return ""

    def ms(v: float) -> str:
        return f"{v / 1e3:.1f} s" if v >= 1000 else f"{v:.0f} ms"

    parts = [f"{label} {ms(stages[key])}" for key, label in COLD_STAGES if key in stages]
    return f"cold start {ms(sum(stages.values()))}: " + " · ".join(parts)


class EnginePanel(Widget):
    DEFAULT_CSS = """
    EnginePanel { layout: vertical; height: auto; }
    EnginePanel Sparkline { height: 2; margin: 0 0 1 0; }
    """

    def __init__(self, history: int = 120, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tok_s: deque[float] = deque(maxlen=history)
        self.batch: deque[float] = deque(maxlen=history)
        self.roofline: deque[float] = deque(maxlen=history)
        self.last: StepEvent | None = None
        self.header = ""

    def compose(self) -> ComposeResult:
        yield Static("loading model…", id="engine-header")
        yield Label("decode tokens/s per step", classes="panel-title")
        yield Sparkline([], id="engine-toks")
        yield Label("batch size", classes="panel-title")
        yield Sparkline([], id="engine-batch")
        yield Label("roofline fraction", classes="panel-title")
        yield Sparkline([], id="engine-roofline")
        yield Static("", id="engine-state")

    def set_header(self, text: str) -> None:
        self.header = text
        self.query_one("#engine-header", Static).update(text)

    def add_steps(self, steps: Iterable[StepEvent]) -> None:
        got = False
        for s in steps:
            got = True
            self.last = s
            dt = (s.t_end_ns - s.t_start_ns) / 1e9
            if s.decode_tokens and dt > 0:
                self.tok_s.append(s.decode_tokens / dt)
            self.batch.append(float(s.batch_size))
            if s.roofline_fraction is not None:
                self.roofline.append(s.roofline_fraction)
        if not got:
            return
        self.query_one("#engine-toks", Sparkline).data = list(self.tok_s)
        self.query_one("#engine-batch", Sparkline).data = list(self.batch)
        self.query_one("#engine-roofline", Sparkline).data = list(self.roofline)
        self._state()

    def set_stats(self, stats: dict[str, Any]) -> None:
        """Engine-wide figures from Engine.stats() (prefix hit rate, speculation decision, ...)."""
        self._stats = stats
        self._state()

    def _state(self) -> None:
        s = self.last
        st: dict[str, Any] = getattr(self, "_stats", {}) or {}
        lines = []
        if s is not None:
            lines.append(
                f"step {s.step} · batch {s.batch_size} · running {s.running} · waiting {s.waiting}"
            )
            if s.kv_blocks_used is not None:
                lines.append(f"KV blocks {s.kv_blocks_used} used / {s.kv_blocks_free} free")
            lines.append(
                f"last {_f(self.tok_s[-1] if self.tok_s else None, '.1f', ' tok/s')} · "
                f"roofline {_f(s.roofline_fraction * 100 if s.roofline_fraction is not None else None, '.0f', '%')}"
            )
        hit = st.get("prefix_cache_hit_rate")
        if hit is not None:
            lines.append(f"prefix cache hit rate {hit * 100:.0f}%")
        if st.get("attention"):
            lines.append(f"attention: {st['attention']}")
        cold = cold_start_line(st.get("cold_start_ms"))
        if cold:
            lines.append(cold)
        if st.get("speculation"):
            reason = st.get("speculation_reason")
            lines.append(f"speculation {st['speculation']}" + (f": {reason}" if reason else ""))
        self.query_one("#engine-state", Static).update("\n".join(lines))
