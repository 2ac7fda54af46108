"""Token-budget panel: a stacked bar per LLM call (categories, output reserve, free space), a growth
chart of prompt tokens per step, the warnings, and a policy's before/after. Fed plain data only."""
from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

# the order and colours of the stacked bar; "reserve" and "free" close each bar
SEGMENTS = (
    ("system_prompt", "sys", "magenta"),
    ("tool_definitions", "tools", "red"),
    ("history", "hist", "blue"),
    ("tool_results", "results", "yellow"),
    ("retrieved_documents", "docs", "cyan"),
    ("current_user_turn", "turn", "green"),
    ("template_overhead", "tmpl", "white"),
    ("output_reserve", "reserve", "bright_black"),
)
BAR_WIDTH = 60
SPARK = "▁▂▃▄▅▆▇█"


def stacked_bar(call: dict[str, Any], width: int = BAR_WIDTH, scale: int | None = None) -> Text:
    """One call as a bar `width` cells wide for `scale` tokens (default: its context window).
    Every non-empty category gets at least one cell so a small one is still visible."""
    scale = scale or call.get("context_window") or max(1, call["total_tokens"])
    values = [(call["categories"].get(k, 0) if k != "output_reserve" else call.get("output_reserve", 0), style)
              for k, _, style in SEGMENTS]
    text = Text()
    used = 0
    for v, style in values:
        if v <= 0:
            continue
        n = max(1, round(v / scale * width))
        n = min(n, width - used)
        if n <= 0:
            break
        text.append("█" * n, style=style)
        used += n
    text.append("░" * max(0, width - used), style="bright_black")
    return text


def growth_chart(calls: list[dict[str, Any]], window: int | None = None) -> str:
    """Prompt tokens per step as a sparkline scaled to the window (or the largest call)."""
    if not calls:
        return ""
    top = window or max(c["total_tokens"] for c in calls) or 1
    return "".join(SPARK[min(len(SPARK) - 1, int(c["total_tokens"] / top * (len(SPARK) - 1) + 0.5))] for c in calls)


def legend() -> Text:
    t = Text()
    for _, short, style in SEGMENTS:
        t.append("█", style=style)
        t.append(f" {short}  ")
    t.append("░", style="bright_black")
    t.append(" free")
    return t


class BudgetPanel(Widget):
    """`set_budget(calls, overflow)` with the dicts `workbench budget --json` prints; it only reads
    them: nothing here talks to an engine, so opening it adds no tokens to any context."""

    DEFAULT_CSS = """
    BudgetPanel { layout: vertical; height: 1fr; }
    BudgetPanel #bp-header { height: auto; color: $text-muted; }
    BudgetPanel #bp-scroll { height: 1fr; }
    """

    def __init__(self, calls: list[dict[str, Any]] | None = None, **kw: Any):
        super().__init__(**kw)
        self.calls: list[dict[str, Any]] = calls or []
        self.rows: list[Text] = []  # what the bars show, for tests and export
        self.warning_lines: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("no budget loaded", id="bp-header")
        with VerticalScroll(id="bp-scroll"):
            yield Static(legend(), id="bp-legend")
            yield Static("", id="bp-bars")
            yield Static("", id="bp-growth")
            yield Static("", id="bp-warnings")
            yield Static("", id="bp-policy")

    def focus(self, scroll_visible: bool = True) -> BudgetPanel:
        """The panel itself takes no focus: its scrolling bars do."""
        self.query_one("#bp-scroll", VerticalScroll).focus(scroll_visible)
        return self

    def on_mount(self) -> None:
        if self.calls:
            self.set_budget(self.calls)

    def set_budget(self, calls: list[dict[str, Any]]) -> None:
        self.calls = calls
        if not calls:
            self.rows, self.warning_lines = [], []
            self.query_one("#bp-header", Static).update("no LLM calls")
            for part in ("#bp-bars", "#bp-growth", "#bp-warnings", "#bp-policy"):
                self.query_one(part, Static).update("")
            return
        first = calls[0]
        window = first.get("context_window") or 0
        step = first.get("overflow_step")
        over = "no overflow projected" if step is None else f"overflows at step {step}" + (" (projected)" if first.get("overflow_projected") else "")
        self.query_one("#bp-header", Static).update(
            f"{first.get('source', '')} · tokenizer {first.get('tokenizer', '?')} · window {window} · {over}")
        bars = Text()
        self.rows = []
        for c in calls:
            row = Text(f"{c['step']:>4} ")
            row.append_text(stacked_bar(c))
            row.append(f" {c['total_tokens']:>7} · free {c.get('free_tokens', 0)}")
            self.rows.append(row)
            bars.append_text(row)
            bars.append("\n")
        self.query_one("#bp-bars", Static).update(bars)
        self.query_one("#bp-growth", Static).update(
            f"growth  {growth_chart(calls, window)}  ({calls[0]['total_tokens']} → {calls[-1]['total_tokens']} tokens)")
        self.warning_lines = [f"step {c['step']}: ⚠ {w['kind']}: {w['message']}" for c in calls for w in c.get("warnings", [])]
        self.query_one("#bp-warnings", Static).update("\n".join(self.warning_lines) or "no warnings")
        self.query_one("#bp-policy", Static).update(self._policy_text(calls))

    @staticmethod
    def _policy_text(calls: list[dict[str, Any]]) -> Text:
        t = Text()
        for c in calls:
            p = c.get("policy")
            if not p or not p.get("actions"):
                continue
            after = dict(c, categories=p["after"]["categories"], total_tokens=p["after"]["total_tokens"])
            t.append(f"step {c['step']} before ")
            t.append_text(stacked_bar(c, BAR_WIDTH // 2))
            t.append(f" {c['total_tokens']}\n        after  ")
            t.append_text(stacked_bar(after, BAR_WIDTH // 2))
            t.append(f" {after['total_tokens']}\n")
        return t
