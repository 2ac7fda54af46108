"""The real Textual app on the embedded model, driven by Pilot."""
import copy

import duckdb
import pytest
from textual.widgets import Digits

from panels.chat_panel import ChatPanel
from panels.latency_panel import LatencyPanel
from panels.sessions_panel import SessionsPanel
from tests.workbench.helpers import send, settle, wait_for
from workbench.app import WorkbenchApp
from workbench.config import DEFAULTS


def _config(max_tokens=16):
    cfg = copy.deepcopy(DEFAULTS)
    cfg["chat"]["temperature"] = 0.0
    cfg["chat"]["max_tokens"] = max_tokens
    cfg["engine"]["n_ctx"] = 2048
    return cfg


async def test_chat_streams_reply_shows_ttft_and_records(db_path):
    app = WorkbenchApp(db_path=db_path, model="smollm2-135m", backend="llamacpp", config=_config())
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.engine_ready)
        await send(pilot, app, "Name a color")
        await wait_for(pilot, lambda: app.chat.last_result is not None)
        await settle(pilot)
        result = app.chat.last_result
        chat = app.query_one(ChatPanel)
        assert result.text and chat.last_reply == result.text
        ttft_ms = result.metrics.ttft_s * 1e3
        assert app.query_one("#ttft-digits", Digits).value == f"{ttft_ms:.0f}"
        lat = app.query_one(LatencyPanel)
        assert len(lat.itl_ms) == result.metrics.output_tokens - 1
        assert lat.session_stats["requests"] == 1
        app.service.recorder.flush()
        await wait_for(pilot, lambda: len(app.query_one(SessionsPanel).rows) == 1)
    app.service.close()
    con = duckdb.connect(db_path, read_only=True)
    assert con.execute("SELECT role, content FROM messages ORDER BY seq").fetchall()[-2:] == [("user", "Name a color"), ("assistant", result.text)]
    row = con.execute("SELECT status, ttft_ms, output_tokens FROM requests").fetchone()
    assert row[0] == "finished" and row[1] == pytest.approx(ttft_ms) and row[2] == result.metrics.output_tokens
    assert con.execute("SELECT count(*) FROM token_events WHERE token_id >= 0").fetchone()[0] == row[2]


async def test_escape_stops_reply_and_keeps_it_then_reopen_session(db_path):
    app = WorkbenchApp(db_path=db_path, model="smollm2-135m", backend="llamacpp", config=_config(max_tokens=1500))
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.engine_ready)
        await send(pilot, app, "Write a long story about a ship")
        await wait_for(pilot, lambda: len(app.query_one(ChatPanel).last_reply) > 10)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.chat.last_result is not None)
        partial = app.chat.last_result
        assert partial.finish_reason == "cancelled" and partial.text
        sid = app.service.session_id
        app.service.recorder.flush()
        await pilot.press("ctrl+n")
        assert app.query_one(ChatPanel).last_reply == ""
        await wait_for(pilot, lambda: len(app.query_one(SessionsPanel).rows) == 1)
        app.post_message(__import__("panels.messages", fromlist=["SessionSelected"]).SessionSelected(sid))
        await wait_for(pilot, lambda: app.query_one(ChatPanel).last_reply == partial.text)
        assert app.service.session_id == sid
        assert app.query_one("#ttft-digits", Digits).value == f"{partial.metrics.ttft_s * 1e3:.0f}"
    app.service.close()
    con = duckdb.connect(db_path, read_only=True)
    assert con.execute("SELECT status FROM requests").fetchone()[0] == "cancelled"


async def test_quit_mid_stream_keeps_partial_reply(db_path):
    app = WorkbenchApp(db_path=db_path, model="smollm2-135m", backend="llamacpp", config=_config(max_tokens=1500))
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.engine_ready)
        await send(pilot, app, "Write a long story about a cat")
        await wait_for(pilot, lambda: len(app.query_one(ChatPanel).last_reply) > 10)
        await pilot.press("ctrl+q")
    app.service.close()  # what run_app does after the app exits
    con = duckdb.connect(db_path, read_only=True)
    status, n, text = con.execute("SELECT status, output_tokens, text FROM requests").fetchone()
    assert status == "cancelled" and n > 0 and text
    assert con.execute("SELECT content FROM messages WHERE role = 'assistant'").fetchone()[0] == text


async def test_every_binding_has_id_tooltip_and_palette_command(db_path):
    app = WorkbenchApp(db_path=db_path, model="smollm2-135m", backend="llamacpp", config=_config())
    async with app.run_test() as pilot:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        for b in WorkbenchApp.BINDINGS:
            assert b.id and b.tooltip
            if b.action != "quit":
                assert b.description in titles
        await wait_for(pilot, lambda: app.engine_ready)
    app.service.close()


async def test_bad_model_path_exits_with_one_line(tmp_path, db_path):
    app = WorkbenchApp(db_path=db_path, model=str(tmp_path / "missing.gguf"), backend="auto", config=_config())
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.return_code is not None, timeout=30)
    app.service.close()
    assert app.return_code == 2
    assert "does not exist" in app.load_error
