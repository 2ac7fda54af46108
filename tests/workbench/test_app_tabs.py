"""The Traces, Budget and Cache tabs of the real app on the embedded model, driven by Pilot,
with a real DuckDB file: imported traces and their N+1 findings, each call's context budget
(and the live trimming policy), and chat replies answered from the semantic cache."""
import copy
from pathlib import Path

import duckdb
from textual.widgets import DataTable, Static, TabbedContent, Tree

from panels.budget_panel import BudgetPanel
from panels.cache_panel import CachePanel
from panels.chat_message import ChatMessage
from panels.chat_panel import ChatPanel
from panels.messages import PromptSubmitted
from panels.trace_inspector import TraceInspector
from sessions.store import Store
from sessions.traces.importers import parse_file
from sessions.traces.findings import detect
from sessions.traces.store import load_trace, save_parsed
from tests.sessions.test_traces_panel import _labels as _tree_labels
from tests.workbench.helpers import send, settle, wait_for
from workbench.app import WorkbenchApp
from workbench.config import DEFAULTS

FX = Path(__file__).resolve().parents[1] / "sessions" / "fixtures" / "traces"


def _config(max_tokens=16, **budget):
    cfg = copy.deepcopy(DEFAULTS)
    cfg["chat"]["temperature"] = 0.0
    cfg["chat"]["max_tokens"] = max_tokens
    cfg["engine"]["n_ctx"] = 2048
    cfg["budget"].update(budget)
    return cfg


def _app(db_path, cfg):
    return WorkbenchApp(db_path=db_path, model="smollm2-135m", backend="llamacpp", config=cfg)


async def _reply(pilot, app, text):
    app.chat.last_result = None
    await send(pilot, app, text)
    await wait_for(pilot, lambda: app.chat.last_result is not None)
    await wait_for(pilot, lambda: not app.chat.awaiting_reply)


async def test_traces_tab_shows_imported_trace_with_nplus1_highlighted(db_path):
    with Store(db_path) as store:
        pf = parse_file(FX / "openai_orders_nplus1.json")
        save_parsed(store, pf)
        tid = pf.traces[0].trace_id
        findings = [f.to_dict() for f in detect(load_trace(store, tid))]
    n_plus_one = [f for f in findings if f["kind"] == "n_plus_one"]
    assert n_plus_one, "the fixture holds an N+1 run of per-order lookups"
    app = _app(db_path, _config())
    async with app.run_test(size=(150, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine_ready)
        await pilot.press("f6")
        assert app.query_one("#tabs", TabbedContent).active == "tab-traces"
        table = app.query_one("#traces-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1)
        table.focus()
        await pilot.press("enter")
        inspector = app.query_one(TraceInspector)
        await wait_for(pilot, lambda: inspector.trace is not None and inspector.trace["id"] == tid)
        await settle(pilot)
        assert inspector.findings == findings
        labels = _tree_labels(inspector.query_one("#ti-tree", Tree))
        flagged = [sid for sid, text in labels if "⚠ n_plus_one" in text]
        assert flagged == n_plus_one[0]["span_ids"]
        assert len(labels) == len(inspector.trace["spans"])
        # the chat's engine panel is hidden meanwhile; the Chat tab comes back with F5
        await pilot.press("f5")
        assert app.query_one("#tabs", TabbedContent).active == "tab-chat"
    app.service.close()


async def test_budget_tab_bar_total_is_the_recorded_prompt_tokens(db_path):
    app = _app(db_path, _config())
    async with app.run_test(size=(150, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine_ready)
        await _reply(pilot, app, "Name a color")
        panel = app.query_one(BudgetPanel)
        assert panel.calls == []  # hidden: not computed until the tab shows
        await pilot.press("f7")
        await wait_for(pilot, lambda: len(panel.calls) == 1)
        call = panel.calls[0]
        assert sum(call["categories"].values()) == call["total_tokens"]
        assert call["categories"]["current_user_turn"] > 0 and call["categories"]["system_prompt"] > 0
        assert call["context_window"] == app.service.engine.backend.context_window
        assert f"{call['total_tokens']:>7} · free" in panel.rows[0].plain
        # a reply that finishes while the tab shows refreshes it
        app.chat.last_result = None
        app.post_message(PromptSubmitted("Name another color"))
        await wait_for(pilot, lambda: app.chat.last_result is not None)
        assert app.active_tab == "tab-budget"
        await wait_for(pilot, lambda: len(panel.calls) == 2)
        calls = panel.calls
    app.service.close()
    con = duckdb.connect(db_path, read_only=True)
    recorded = [r[0] for r in con.execute("SELECT prompt_tokens FROM requests ORDER BY arrival_ns").fetchall()]
    assert [c["total_tokens"] for c in calls] == recorded
    assert calls[1]["total_tokens"] > calls[0]["total_tokens"]


async def test_live_budget_policy_trims_history_and_panel_shows_before_after(db_path):
    app = _app(db_path, _config(apply_to_chat=True, caps={"history": 8}))
    async with app.run_test(size=(150, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine_ready)
        await _reply(pilot, app, "Name a color")
        # unlike the first question: trimmed to no history, a paraphrase would be a cache hit
        await _reply(pilot, app, "Write one line about the sea")
        assert [m["role"] for m in app.service.history] == ["system", "user", "assistant", "user", "assistant"]
        await pilot.press("f7")
        panel = app.query_one(BudgetPanel)
        await wait_for(pilot, lambda: len(panel.calls) == 2)
        first, second = panel.calls
        policy_text = str(panel.query_one("#bp-policy", Static).content)
        status = str(app.query_one("#budget-status", Static).content)
    app.service.close()
    assert not first["policy"]["actions"]  # nothing before the first question to trim
    actions = second["policy"]["actions"]
    assert actions and all(a["action"] == "drop" and a["category"] == "history" for a in actions)
    after = second["policy"]["after"]
    assert after["categories"]["history"] <= 8 < second["categories"]["history"]
    assert "step 1 before" in policy_text and "after" in policy_text and str(after["total_tokens"]) in policy_text
    assert "applied to this chat" in status
    con = duckdb.connect(db_path, read_only=True)
    recorded = [r[0] for r in con.execute("SELECT prompt_tokens FROM requests ORDER BY arrival_ns").fetchall()]
    # the engine got the trimmed context; the session keeps the whole conversation
    assert recorded == [first["total_tokens"], after["total_tokens"]]
    assert con.execute("SELECT count(*) FROM messages").fetchone()[0] == 5


async def test_repeated_prompt_is_answered_from_semantic_cache(db_path, wb):
    app = _app(db_path, _config())
    started = []
    async with app.run_test(size=(150, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine_ready)
        app.service.engine.add_listener(lambda ev: started.append(ev) if type(ev).__name__ == "RequestStarted" else None)
        await _reply(pilot, app, "What is the capital of France?")
        answer = app.chat.last_result.text
        await wait_for(pilot, lambda: app.service.cache.stats()["stores"] == 1)
        first_sid = app.service.session_id
        await pilot.press("ctrl+n")
        app.chat.last_result = None
        await send(pilot, app, "What is the capital of France?")
        await wait_for(pilot, lambda: app.chat.last_cached is not None)
        await settle(pilot)  # the turn's worker is done: had it asked the engine, the reply would be in
        assert app.chat.last_result is None and len(started) == 1  # the engine got no second request
        msg = [m for m in app.query_one(ChatPanel).log.query(ChatMessage) if m.role == "assistant"][-1]
        assert msg.cached and msg.text == answer and "cached · similarity" in msg.note
        assert app.chat.last_cached.similarity >= app.service.cache.config.threshold
        await pilot.press("f8")
        cache_panel = app.query_one(CachePanel)
        await wait_for(pilot, lambda: cache_panel.stats.get("hits") == 1)
        assert cache_panel.stats["lookups"] == 2
        second_sid = app.service.session_id
    app.service.close()
    assert second_sid != first_sid
    con = duckdb.connect(db_path, read_only=True)
    assert con.execute("SELECT count(*) FROM requests").fetchone()[0] == 1
    row = con.execute("SELECT content, request_id, cache_entry_id, cache_similarity FROM messages "
                      "WHERE session_id = ? AND role = 'assistant'", [second_sid]).fetchone()
    assert row[0] == answer and row[1] is None and row[2] and row[3] >= 0.88
    assert con.execute("SELECT cache_entry_id FROM messages WHERE session_id = ? AND role = 'assistant'",
                       [first_sid]).fetchone()[0] is None
    con.close()
    out = wb("--db", db_path, "sessions", "show", second_sid)
    assert out.returncode == 0, out.stderr
    assert "[assistant] (cached, similarity" in out.stdout


async def test_engine_tab_shows_the_speculation_decision_and_each_reply_prefix_row(db_path):
    from panels.prefix_panel import PrefixPanel
    from panels.spec_panel import SpecPanel

    app = _app(db_path, _config())
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.engine_ready)
        await _reply(pilot, app, "Name a fruit")
        await pilot.press("f9")
        await wait_for(pilot, lambda: app.query_one("#tabs", TabbedContent).active == "tab-engine")
        await wait_for(pilot, lambda: app.query_one(PrefixPanel).rows != [])
        assert [rid for rid, _ in app.query_one(PrefixPanel).rows] == [app.chat.last_result.request_id]
        # llama.cpp keeps speculation off and says why; the panel shows that reason
        reason = app.service.engine.stats()["speculation_reason"]
        assert reason and reason[:40] in str(app.query_one(SpecPanel).render())
    app.service.close()
