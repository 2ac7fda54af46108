"""The latency panel: TTFT of the last reply in large digits, the ITL sparkline as tokens
arrive, and the session's p50/p95 TTFT and tokens/s."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Digits, Label, Sparkline, Static

from engine.types import percentile


def _f(x: float | None, unit: str = "", digits: int = 0) -> str:
    return "–" if x is None else f"{x:.{digits}f}{unit}"


class LatencyPanel(Widget):
    DEFAULT_CSS = """
    LatencyPanel { layout: vertical; height: auto; }
    LatencyPanel #ttft-digits { width: auto; }
    LatencyPanel #itl-spark { height: 4; margin: 1 0; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ttft_ms: float | None = None
        self.itl_ms: list[float] = []
        self.session_stats: dict = {}

    def compose(self) -> ComposeResult:
        yield Label("time to first token (ms)", classes="panel-title")
        yield Digits("-", id="ttft-digits")
        yield Label("inter-token latency (ms)", classes="panel-title")
        yield Sparkline([], id="itl-spark", summary_function=max)
        yield Static("", id="itl-line")
        yield Static("", id="session-line")

    # ---- updates (called by the app's drain timer, never per token) ----
    def waiting(self, elapsed_ms: float) -> None:
        """While the first token is pending, count up so a slow TTFT is visible as it happens."""
        self.query_one("#ttft-digits", Digits).update(f"{elapsed_ms:.0f}")

    def reset_reply(self) -> None:
        self.ttft_ms = None
        self.itl_ms = []
        self.query_one("#itl-spark", Sparkline).data = []
        self.query_one("#itl-line", Static).update("")

    def set_ttft(self, ttft_ms: float | None) -> None:
        self.ttft_ms = ttft_ms
        self.query_one("#ttft-digits", Digits).update(_f(ttft_ms))

    def add_itl(self, values_ms: list[float]) -> None:
        if not values_ms:
            return
        self.itl_ms.extend(values_ms)
        self.query_one("#itl-spark", Sparkline).data = self.itl_ms[-120:]
        p50 = percentile(self.itl_ms, 50)
        self.query_one("#itl-line", Static).update(
            f"last {_f(values_ms[-1], ' ms', 1)} · p50 {_f(p50, ' ms', 1)} · max {_f(max(self.itl_ms), ' ms', 1)} · "
            f"{len(self.itl_ms) + 1} tokens"
        )

    def set_session_stats(self, p50_ttft_ms: float | None, p95_ttft_ms: float | None, tokens_per_s: float | None, requests: int) -> None:
        self.session_stats = {"p50_ttft_ms": p50_ttft_ms, "p95_ttft_ms": p95_ttft_ms, "output_tokens_per_s": tokens_per_s, "requests": requests}
        self.query_one("#session-line", Static).update(
            f"session: {requests} replies\n"
            f"TTFT p50 {_f(p50_ttft_ms, ' ms')} · p95 {_f(p95_ttft_ms, ' ms')}\n"
            f"{_f(tokens_per_s, ' tok/s', 1)}"
        )
