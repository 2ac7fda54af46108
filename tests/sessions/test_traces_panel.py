"""The trace inspector panel, driven by Pilot with a real imported trace and real findings."""
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Select, Static, Tree

from panels.trace_inspector import TraceInspector, waterfall
from sessions.store import Store
from sessions.traces.importers import parse_file
from sessions.traces.findings import detect
from sessions.traces.store import get_trace, save_parsed, trace_from_dict

FX = Path(__file__).parent / "fixtures" / "traces"


def _load(db_path, name, fx=FX):
    with Store(db_path) as store:
        pf = parse_file(fx / name)
        save_parsed(store, pf)
        d = get_trace(store, pf.traces[0].trace_id)
    return d, [f.to_dict() for f in detect(trace_from_dict(d))]


class _Host(App):
    def __init__(self, trace, findings):
        super().__init__()
        self._trace, self._findings = trace, findings
        self.selected = []

    def compose(self) -> ComposeResult:
        yield TraceInspector(self._trace, self._findings)

    def on_trace_inspector_span_selected(self, msg):
        self.selected.append(msg.span["span_id"])


def _labels(tree):
    out = []

    def walk(node):
        for c in node.children:
            out.append((c.data["span_id"], str(c.label)))
            walk(c)
    walk(tree.root)
    return out


async def test_tree_waterfall_highlight_and_filters(db_path):
    trace, findings = _load(db_path, "otlp_genai.json")
    app = _Host(trace, findings)
    async with app.run_test(size=(160, 50)) as pilot:
        insp = app.query_one(TraceInspector)
        tree = insp.query_one(Tree)
        labels = _labels(tree)
        assert len(labels) == 12
        flagged = [sid for sid, text in labels if "⚠ n_plus_one" in text]
        assert flagged == findings[0]["span_ids"]
        root_label = dict(labels)["a000000000000001"]
        assert root_label.startswith("█" * 24)  # the root spans the whole trace
        # filter by tool name, then by kind
        insp.set_filters(None, "get_order")
        await pilot.pause()
        assert len(insp.visible_span_ids) == 5
        insp.query_one(Select).value = "llm"
        await pilot.pause()
        assert insp.kind_filter == "llm"
        assert len(insp.visible_span_ids) == 0  # llm spans have no tool name
        insp.set_filters("llm", "")
        await pilot.pause()
        assert len(insp.visible_span_ids) == 6
        # selecting a node fills the detail pane and posts a message
        insp.set_filters(None, "")
        await pilot.pause()
        node = next(n for n in _nodes(tree.root) if n.data["span_id"] == flagged[0])
        tree.select_node(node)
        await pilot.pause()
        detail = str(insp.query_one("#ti-detail", Static).render())
        assert '"order_id": 5001' in detail and "n_plus_one ×5" in detail and "40.0 ms" in detail
        assert app.selected == [flagged[0]]


def _nodes(node):
    for c in node.children:
        yield c
        yield from _nodes(c)


async def test_untimed_trace_shows_no_invented_times(db_path):
    trace, findings = _load(db_path, "openai_orders_nplus1.json")
    app = _Host(trace, findings)
    async with app.run_test(size=(160, 50)) as pilot:
        insp = app.query_one(TraceInspector)
        assert "no timings" in str(insp.query_one("#ti-header", Static).render())
        labels = _labels(insp.query_one(Tree))
        assert all(" ms" not in text and "█" not in text for _, text in labels)
        insp.show_detail(trace["spans"][1])
        await pilot.pause()
        assert "duration: not recorded" in str(insp.query_one("#ti-detail", Static).render())


def test_waterfall_by_duration_alone():
    assert waterfall({"duration_ms": 50.0}, None, None, 100.0).count("▒") == 12
    assert set(waterfall({}, None, None, None)) == {"·"}


async def test_every_finding_kind_is_listed(db_path):
    """Not only the tool-call kinds: a partial write failure and a cold start are listed, and the
    spans they name are marked in the tree."""
    detectors = Path(__file__).parent / "fixtures" / "detectors"
    for name, kinds in [("write_amplification.json", ["write_amplification", "partial_write_failure"]),
                        ("cold_start.json", ["cold_start"]), ("retries.json", ["retry"])]:
        trace, findings = _load(db_path, name, detectors)
        app = _Host(trace, findings)
        async with app.run_test(size=(160, 50)) as pilot:
            insp = app.query_one(TraceInspector)
            await pilot.pause()
            listed = str(insp.query_one("#ti-findings", Static).render())
            assert [k for k in kinds if f"⚠ {k}" in listed] == kinds
            marked = {sid for sid, text in _labels(insp.query_one(Tree)) if "⚠" in text}
            assert set(findings[0]["span_ids"]) <= marked
