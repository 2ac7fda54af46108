"""The app as the place where traces are replayed, budgets opened and bench runs started, charted,
compared and exported: the real app on the embedded model, a real DuckDB file, driven by Pilot."""
import copy
import json
from pathlib import Path

import duckdb
import pytest
from textual.widgets import DataTable, Input

from panels.budget_panel import BudgetPanel
from panels.messages import SessionsListed, TracesListed
from panels.replay_panel import ReplayPanel
from panels.runs_panel import RunsPanel
from sessions.store import Store
from sessions.traces.importers import parse_file
from sessions.traces.store import save_parsed
from tests.workbench.helpers import send, settle, wait_for
from workbench.app import WorkbenchApp
from workbench.config import DEFAULTS
from workbench.export_screen import ExportScreen

FX = Path(__file__).resolve().parents[1] / "fixtures" / "traces"
TRACE = FX / "langfuse" / "openai-agents-2025-09-30.trace.json"  # two short LLM calls
LONG_TRACE = FX / "anthropic" / "tool_runner-956fa2fe.json"  # its first answer was 995 tokens long


def _config(**slo):
    cfg = copy.deepcopy(DEFAULTS)
    cfg["chat"]["temperature"] = 0.0
    cfg["chat"]["max_tokens"] = 16
    cfg["engine"]["n_ctx"] = 2048
    cfg["semantic_cache"]["enabled"] = False
    if slo:
        cfg["slo"] = slo  # the [slo] table a config file may carry
    return cfg


def _app(db_path, cfg):
    return WorkbenchApp(db_path=db_path, model="smollm2-135m", backend="llamacpp", config=cfg)


async def _type(pilot, text: str) -> None:
    await pilot.press(*[("space" if c == " " else c) for c in text])


async def test_replay_a_trace_from_the_traces_tab_then_open_its_budget(db_path):
    with Store(db_path) as store:
        pf = parse_file(TRACE)
        save_parsed(store, pf)
    tid = pf.traces[0].trace_id
    app = _app(db_path, _config())
    async with app.run_test(size=(150, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine_ready, what="the model to load")
        await send(pilot, app, "Name a color")
        await wait_for(pilot, lambda: app.chat.last_result is not None and not app.chat.awaiting_reply)
        chat_sid = app.service.session_id
        await pilot.press("f6")
        inspector = app.query_one("#trace-inspector")
        await wait_for(pilot, lambda: inspector.trace is not None and inspector.trace["id"] == tid)
        await pilot.press("ctrl+t")
        panel = app.query_one(ReplayPanel)
        await wait_for(pilot, lambda: panel.result is not None, what="the replay to finish")
        result = panel.result
        table = app.query_one("#replay-table", DataTable)
        assert len(result["steps"]) == 2 and table.row_count == 3  # two calls and the totals
        for i, step in enumerate(result["steps"]):
            row = table.get_row_at(i)
            assert row[3] == f"{step['replayed_ttft_ms']:.1f}" and row[2] == "-"  # the format keeps no first-token time
            assert row[4] == f"{step['original_e2e_ms']:.1f}" and row[5] == f"{step['replayed_e2e_ms']:.1f}"
            assert row[7] == str(step["output_tokens"])
        total = table.get_row_at(2)
        assert total[0] == "total"
        assert total[5] == f"{sum(s['replayed_e2e_ms'] for s in result['steps']):.1f}"
        sid = result["session_id"]
        assert app.service.recorder.step_session_id == chat_sid  # the chat's next steps are the chat's again

        # the same trace's context budget, in the Budget tab
        await pilot.press("ctrl+g")
        budget = app.query_one(BudgetPanel)
        await wait_for(pilot, lambda: len(budget.calls) == 2, what="the trace's budget")
        assert budget.calls[0]["source"] == f"trace {tid}"
        assert [c["step"] for c in budget.calls] == [0, 1] and len(budget.rows) == 2
        assert all(c["total_tokens"] > 0 and c["context_window"] for c in budget.calls)
        assert f"trace {tid} · 2 call(s)" in str(app.query_one("#budget-status").render())
        # and any stored session, typed in (a unique prefix is enough)
        app.query_one("#budget-source", Input).focus()
        await pilot.press("ctrl+u")
        await _type(pilot, chat_sid[:8])
        await pilot.press("enter")
        await wait_for(pilot, lambda: budget.calls and budget.calls[0]["source"] == f"session {chat_sid}",
                       what="the chat session's budget")
        assert len(budget.calls) == 1
        await settle(pilot)
    app.service.close()
    con = duckdb.connect(db_path, read_only=True)
    assert con.execute("SELECT kind FROM sessions WHERE id = ?", [sid]).fetchone()[0] == "replay"
    linked = con.execute("SELECT r.request_id, q.ttft_ms FROM trace_replays r JOIN requests q ON q.id = r.request_id"
                         " WHERE r.session_id = ? AND r.trace_id = ?", [sid, tid]).fetchall()
    assert len(linked) == 2
    assert sorted(t for _, t in linked) == sorted(s["replayed_ttft_ms"] for s in result["steps"])
    # one row per request: the app's recorder wrote them, not a second one beside it
    assert con.execute("SELECT count(*) FROM requests WHERE session_id = ?", [sid]).fetchone()[0] == 2
    # the engine's steps while it replayed are the replay's, and the chat's own steps stay the chat's
    assert con.execute("SELECT count(*) FROM steps WHERE session_id = ?", [sid]).fetchone()[0] > 0
    assert con.execute("SELECT count(*) FROM steps WHERE session_id = ?", [chat_sid]).fetchone()[0] > 0


async def test_bench_from_the_runs_tab_compare_and_export(db_path, tmp_path):
    app = _app(db_path, _config(ttft_p95_ms=600000.0, tpot_p95_ms=0.001))
    async with app.run_test(size=(150, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine_ready, what="the model to load")
        await pilot.press("f4")
        panel = app.query_one(RunsPanel)
        app.query_one("#bench-max-tokens", Input).value = "8"
        app.query_one("#bench-concurrency", Input).value = "2"
        for k in (1, 2):
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: not app.benching and len(panel.rows) == k
                           and all(r["status"] == "finished" for r in panel.rows), what=f"bench run {k} to finish")
        await wait_for(pilot, lambda: panel.detail_id == panel.rows[0]["id"])
        table = app.query_one("#runs-table", DataTable)
        newest, oldest = panel.rows[0], panel.rows[1]
        assert newest["num_requests"] == 4 and newest["workload"] == "chat" and newest["concurrency"] == 2
        row = table.get_row_at(0)
        assert row[5] == (f"{newest['median_ttft_ms']:.0f}" if newest["median_ttft_ms"] >= 100 else f"{newest['median_ttft_ms']:.1f}")
        assert row[10] == "FAIL"  # a tpot p95 of 1 µs cannot be met
        slo = app.query_one("#run-slo").render()
        assert "FAIL" in str(slo) and "p95_ttft_ms" in str(slo)

        # compare: mark the newest, select the older one
        table.focus()
        await pilot.press("ctrl+f")
        assert panel.marked == newest["id"]
        await pilot.press("down")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: "Mann-Whitney" in panel.compare_text or "too few" in panel.compare_text,
                       what="the comparison")
        assert f"{oldest['id']} compared with {newest['id']}" in panel.compare_text
        assert "TTFT:" in panel.compare_text

        # export the newest run as HTML to a path typed in the dialog
        await pilot.press("up", "enter")
        await wait_for(pilot, lambda: panel.detail_id == newest["id"])
        out = tmp_path / "reports" / "run.html"
        out.parent.mkdir()
        await pilot.press("f10")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
        await pilot.press("ctrl+u")
        await _type(pilot, str(out))
        await pilot.press("enter")
        await wait_for(pilot, lambda: "written to" in panel.export_text, what="the report to be written")
        assert str(out) in panel.export_text
        text = out.read_text(encoding="utf-8")
        assert newest["id"] in text and "<svg" in text

        # a path that cannot be written: one clear line, nothing written
        bad = tmp_path / "missing-dir" / "run.json"
        await pilot.press("f10")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen))
        await pilot.press("ctrl+u")
        await _type(pilot, str(bad))
        await pilot.press("enter")
        await wait_for(pilot, lambda: "cannot write" in panel.export_text, what="the export error")
        assert "No such file or directory" in panel.export_text and not bad.exists()
        await settle(pilot)
    app.service.close()
    con = duckdb.connect(db_path, read_only=True)
    n = con.execute("SELECT count(*) FROM bench_requests WHERE run_id = ?", [newest["id"]]).fetchone()[0]
    assert n == 4
    # one row per request: the bench used the app's recorder
    assert con.execute("SELECT count(*) FROM requests WHERE session_id = ?", [newest["id"]]).fetchone()[0] == 4
    summary = json.loads(con.execute("SELECT summary FROM bench_runs WHERE id = ?", [newest["id"]]).fetchone()[0])
    assert summary["completed"] == 4


async def test_stopping_a_replay_cancels_the_call_in_flight_and_keeps_it(db_path):
    from engine.types import RequestStarted, TokenEvent

    with Store(db_path) as store:
        pf = parse_file(LONG_TRACE)
        save_parsed(store, pf)
    app = _app(db_path, _config())
    async with app.run_test(size=(150, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine_ready, what="the model to load")
        replayed: set[str] = set()
        tokens: list[str] = []

        def watch(ev) -> None:  # what the engine does, seen from outside: the replay's tokens
            if isinstance(ev, RequestStarted) and ev.tags.get("trace_span_id"):
                replayed.add(ev.request_id)
            elif isinstance(ev, TokenEvent) and ev.request_id in replayed:
                tokens.append(ev.request_id)

        app.service.engine.add_listener(watch)
        await pilot.press("f6")
        await wait_for(pilot, lambda: app.query_one("#trace-inspector").trace is not None)
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: len(tokens) >= 3, what="the first replayed call to stream")
        await pilot.press("f12")
        panel = app.query_one(ReplayPanel)
        await wait_for(pilot, lambda: panel.result is not None, what="the replay to stop")
        app.service.engine.remove_listener(watch)
        steps = panel.result["steps"]
        assert panel.result["stopped"] and len(steps) == 1
        assert steps[0]["finish_reason"] == "cancelled" and 0 < steps[0]["output_tokens"] < 995
        assert "stopped 1 call(s)" in str(app.query_one("#replay-status").render())
        sid = panel.result["session_id"]
        await settle(pilot)
    app.service.close()
    con = duckdb.connect(db_path, read_only=True)
    assert con.execute("SELECT status FROM requests WHERE session_id = ?", [sid]).fetchall() == [("cancelled",)]
    assert con.execute("SELECT count(*) FROM trace_replays WHERE session_id = ?", [sid]).fetchone()[0] == 1


async def test_stopping_a_bench_keeps_what_finished_as_an_interrupted_run(db_path):
    app = _app(db_path, _config())
    async with app.run_test(size=(150, 45)) as pilot:
        await wait_for(pilot, lambda: app.engine_ready, what="the model to load")
        await pilot.press("f4")
        panel = app.query_one(RunsPanel)
        app.query_one("#bench-requests", Input).value = "40"
        app.query_one("#bench-max-tokens", Input).value = "24"
        await pilot.press("ctrl+o")
        status = app.query_one("#bench-status")
        done = lambda: int(str(status.render()).split("/40 done")[0]) if "/40 done" in str(status.render()) else 0  # noqa: E731
        await wait_for(pilot, lambda: done() >= 2, what="live progress")
        assert "ttft p50" in str(status.render())  # live percentiles while it runs
        await pilot.press("f12")
        await wait_for(pilot, lambda: not app.benching and len(panel.rows) == 1, what="the run to stop")
        run = panel.rows[0]
        assert run["status"] == "interrupted" and 2 <= run["completed"] < 40
        await settle(pilot)
    app.service.close()
    con = duckdb.connect(db_path, read_only=True)
    statuses = dict(con.execute("SELECT status, count(*) FROM requests WHERE session_id = ? GROUP BY ALL",
                                [run["id"]]).fetchall())
    assert statuses["finished"] == run["completed"] and sum(statuses.values()) < 40


async def test_a_form_error_is_one_line_and_starts_nothing(db_path):
    app = _app(db_path, _config())
    async with app.run_test(size=(150, 45)) as pilot:
        await pilot.press("f4")
        app.query_one("#bench-requests", Input).value = "four"
        await pilot.press("ctrl+o")
        status = app.query_one("#bench-status")
        await wait_for(pilot, lambda: "requests must be a number" in str(status.render()))
        assert not app.benching
        await wait_for(pilot, lambda: app.engine_ready or app.load_error)
    app.service.close()


async def test_results_posted_after_shutdown_are_dropped(db_path):
    app = _app(db_path, _config())
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: app.engine_ready, what="the model to load")
    app.service.close()
    # a worker that finishes late posts into an app whose widgets are gone
    assert app.on_sessions_listed(SessionsListed([])) is None
    assert app.on_traces_listed(TracesListed([])) is None


@pytest.mark.slow
async def test_bench_a_remote_openai_compatible_server_from_the_runs_tab(db_path, tmp_path):
    from textual.widgets import Select

    from test_serve import start_serve, stop_serve

    proc, port = start_serve(tmp_path / "server.duckdb")
    try:
        app = _app(db_path, _config())
        async with app.run_test(size=(150, 45)) as pilot:
            await pilot.press("f4")
            panel = app.query_one(RunsPanel)
            app.query_one("#bench-backend", Select).value = "openai"
            app.query_one("#bench-url", Input).value = f"http://127.0.0.1:{port}/v1"
            app.query_one("#bench-max-tokens", Input).value = "4"
            app.query_one("#bench-requests", Input).value = "3"
            await wait_for(pilot, lambda: app.service.store is not None)
            await pilot.press("ctrl+o")  # no local model needed: the server has its own
            await wait_for(pilot, lambda: not app.benching and len(panel.rows) == 1, what="the remote run")
            run = panel.rows[0]
            assert run["backend"] == "openai" and run["base_url"] == f"http://127.0.0.1:{port}/v1"
            assert run["status"] == "finished" and run["completed"] == 3
            await settle(pilot)
        app.service.close()
    finally:
        stop_serve(proc)
