"""Trace inspector: an imported trace's span tree with a duration waterfall, every finding listed and its
spans highlighted, a detail pane and filters by kind and tool. Fed plain data (sessions.traces.store.get_trace)."""
from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Select, Static, Tree

KINDS = ("llm", "tool", "agent", "retrieval", "other")
BAR_WIDTH = 24
KIND_STYLE = {"llm": "magenta", "tool": "cyan", "agent": "green", "retrieval": "blue", "other": "white"}


def waterfall(span: dict[str, Any], t0: int | None, t_total: int | None, max_duration: float | None) -> str:
    """A bar placed on the trace's time line when start/end are known; sized by duration alone
    when only durations are (SWE-agent); blank when the format records no times."""
    if t0 is not None and t_total and span.get("start_ns") is not None and span.get("end_ns") is not None:
        a = int((span["start_ns"] - t0) / t_total * BAR_WIDTH)
        b = max(a + 1, int((span["end_ns"] - t0) / t_total * BAR_WIDTH))
        return " " * a + "█" * (b - a) + " " * (BAR_WIDTH - b)
    d = span.get("duration_ms")
    if d is not None and max_duration:
        n = max(1, int(d / max_duration * BAR_WIDTH))
        return "▒" * n + " " * (BAR_WIDTH - n)
    return "·" * BAR_WIDTH


class TraceInspector(Widget):
    DEFAULT_CSS = """
    TraceInspector { layout: vertical; height: 1fr; }
    TraceInspector #ti-filters { height: auto; }
    TraceInspector #ti-kind { width: 24; }
    TraceInspector #ti-tool { width: 1fr; }
    TraceInspector #ti-body { height: 1fr; }
    TraceInspector #ti-tree { width: 3fr; }
    TraceInspector #ti-detail-scroll { width: 2fr; border-left: solid $panel; padding: 0 1; }
    TraceInspector #ti-header { height: auto; color: $text-muted; }
    TraceInspector #ti-findings { height: auto; max-height: 8; }
    """

    class SpanSelected(Message):
        def __init__(self, span: dict[str, Any]) -> None:
            self.span = span
            super().__init__()

    def __init__(self, trace: dict[str, Any] | None = None, findings: list[dict[str, Any]] | None = None, **kw: Any):
        super().__init__(**kw)
        self.trace: dict[str, Any] | None = trace
        self.findings: list[dict[str, Any]] = findings or []
        self.kind_filter: str | None = None
        self.tool_filter: str = ""
        self.flagged: dict[str, str] = {}  # span id -> finding kind
        self.visible_span_ids: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("no trace loaded", id="ti-header")
        yield Static("", id="ti-findings")
        with Horizontal(id="ti-filters"):
            yield Select([(k, k) for k in KINDS], prompt="all kinds", id="ti-kind", allow_blank=True)
            yield Input(placeholder="filter by tool name", id="ti-tool")
        with Horizontal(id="ti-body"):
            yield Tree("trace", id="ti-tree")
            with VerticalScroll(id="ti-detail-scroll"):
                yield Static("select a span", id="ti-detail")

    def on_mount(self) -> None:
        if self.trace is not None:
            self.set_trace(self.trace, self.findings)

    # ---- data in ----
    def set_header(self, text: str) -> None:
        """A line above the tree, e.g. why there is no trace to show."""
        self.query_one("#ti-header", Static).update(Text(text))

    def set_trace(self, trace: dict[str, Any], findings: list[dict[str, Any]] | None = None) -> None:
        self.trace = trace
        self.findings = [f for f in (findings or []) if f.get("trace_id") in (None, trace.get("id"))]
        self.flagged = {}
        for f in self.findings:
            for sid in f["span_ids"]:
                self.flagged.setdefault(sid, f["kind"])
        n = len(self.findings)
        timing = "" if trace.get("has_timings") else " · no timings in this format"
        self.set_header(f"{trace.get('id')} · {trace.get('format')} · {len(trace.get('spans', []))} spans · {n} finding(s){timing}")
        self.query_one("#ti-findings", Static).update(findings_text(self.findings))
        self.rebuild()

    def set_filters(self, kind: str | None = None, tool: str = "") -> None:
        self.kind_filter = kind
        self.tool_filter = tool.strip().lower()
        self.rebuild()

    # ---- rendering ----
    def _matches(self, s: dict[str, Any]) -> bool:
        if self.kind_filter and s["kind"] != self.kind_filter:
            return False
        if self.tool_filter and self.tool_filter not in (s.get("tool_name") or "").lower():
            return False
        return True

    def _label(self, s: dict[str, Any], t0: int | None, total: int | None, max_d: float | None) -> Text:
        name = f"{s['tool_name']}({_short(s.get('tool_arguments'))})" if s["kind"] == "tool" else s["name"]
        text = Text()
        text.append(waterfall(s, t0, total, max_d), style="dim")
        text.append(f" {s['kind']:<5} ", style=KIND_STYLE.get(s["kind"], ""))
        flag = self.flagged.get(s["span_id"])
        text.append(name, style="bold yellow" if flag else "")
        if flag:
            text.append(f"  ⚠ {flag}", style="bold yellow")
        if s.get("duration_ms") is not None:
            text.append(f"  {s['duration_ms']:.1f} ms", style="dim")
        return text

    def rebuild(self) -> None:
        tree = self.query_one("#ti-tree", Tree)
        tree.clear()
        self.visible_span_ids = []
        if not self.trace:
            return
        spans = self.trace.get("spans", [])
        starts = [s["start_ns"] for s in spans if s.get("start_ns") is not None]
        ends = [s["end_ns"] for s in spans if s.get("end_ns") is not None]
        t0 = min(starts) if starts else None
        total = (max(ends) - t0) if starts and ends and max(ends) > t0 else None
        durs = [s["duration_ms"] for s in spans if s.get("duration_ms") is not None]
        max_d = max(durs) if durs else None
        tree.root.label = Text(str(self.trace.get("name") or self.trace.get("id")))
        filtering = bool(self.kind_filter or self.tool_filter)
        if filtering:  # a flat list of what matches: the tree would mostly be hidden parents
            for s in spans:
                if self._matches(s):
                    tree.root.add_leaf(self._label(s, t0, total, max_d), data=s)
                    self.visible_span_ids.append(s["span_id"])
        else:
            ids = {s["span_id"] for s in spans}
            children: dict[Any, list[dict[str, Any]]] = {}
            for s in spans:
                parent = s.get("parent_id") if s.get("parent_id") in ids else None
                children.setdefault(parent, []).append(s)
            self._add(tree.root, None, children, t0, total, max_d)
        tree.root.expand_all()

    def _add(self, node, parent_id, children, t0, total, max_d) -> None:
        for s in children.get(parent_id, []):
            kids = children.get(s["span_id"])
            label = self._label(s, t0, total, max_d)
            child = node.add(label, data=s) if kids else node.add_leaf(label, data=s)
            self.visible_span_ids.append(s["span_id"])
            if kids:
                self._add(child, s["span_id"], children, t0, total, max_d)

    def show_detail(self, s: dict[str, Any]) -> None:
        self.query_one("#ti-detail", Static).update(Text(detail_text(s, self.findings)))  # JSON is not markup

    # ---- events ----
    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        event.stop()
        if isinstance(event.node.data, dict):
            self.show_detail(event.node.data)
            self.post_message(self.SpanSelected(event.node.data))

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        value = event.value if isinstance(event.value, str) else None
        self.set_filters(value, self.tool_filter)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.set_filters(self.kind_filter, event.value)


def findings_text(findings: list[dict[str, Any]]) -> Text:
    """One line per finding, whatever its kind: a cold start or a held connection is about the
    trace as much as about the spans it marks."""
    text = Text()
    for i, f in enumerate(findings):
        if i:
            text.append("\n")
        text.append(f"⚠ {f['kind']}", style="bold yellow")
        text.append(f" ×{f['count']} {_short(f.get('tool'), 40)}")
        if f.get("saved_ms_estimate") is not None:
            text.append(f" · ~{f['saved_ms_estimate']:.0f} ms to save", style="dim")
        if f.get("detail"):
            text.append(f" · {_short(f['detail'], 120)}", style="dim")
    return text


def detail_text(s: dict[str, Any], findings: list[dict[str, Any]]) -> str:
    def ms(v: Any) -> str:
        return "not recorded" if v is None else f"{v:.1f} ms"

    lines = [f"{s['kind']} · {s['name']} · {s.get('status')}", f"duration: {ms(s.get('duration_ms'))}"]
    if s["kind"] == "llm":
        lines.append(f"ttft: {ms(s.get('ttft_ms'))}")
        lines.append(f"tokens: in {s.get('input_tokens') if s.get('input_tokens') is not None else '-'}"
                     f" · out {s.get('output_tokens') if s.get('output_tokens') is not None else '-'}")
        if s.get("model"):
            lines.append(f"model: {s['model']}")
        for m in s.get("output_messages") or []:
            lines.append(f"reply: {_short(m.get('content'), 400)}")
            for c in m.get("tool_calls") or []:
                lines.append(f"  → {c['name']}({_short(c.get('arguments'), 200)})")
    if s["kind"] == "tool":
        lines.append(f"tool: {s.get('tool_name')}")
        lines.append("arguments: " + json.dumps(s.get("tool_arguments"), ensure_ascii=False, indent=1))
        lines.append(f"result: {_short(s.get('tool_result'), 800)}")
    for f in findings:
        if s["span_id"] in f["span_ids"]:
            what = f"{f['detail']}; " if f.get("detail") else ""
            lines.append(f"⚠ {f['kind']} ×{f['count']} ({f['fingerprint']}): {what}{f.get('estimate_method', '')}")
    return "\n".join(lines)


def _short(v: Any, n: int = 48) -> str:
    if v is None:
        return ""
    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
