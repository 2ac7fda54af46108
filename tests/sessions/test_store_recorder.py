"""The DuckDB store and recorder on a real file."""
import subprocess
import sys
import textwrap

import duckdb
import pytest

from engine import SamplingParams
from sessions import Recorder, Store, StoreError, get_session, list_sessions, session_summary
from sessions.schema import MIGRATIONS, SCHEMA_VERSION


def test_new_file_is_migrated_to_current_version(db_path):
    with Store(db_path) as s:
        assert s.schema_version() == SCHEMA_VERSION
    with Store(db_path) as s:  # reopening applies nothing twice
        assert s.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)


def test_newer_schema_is_refused_with_a_clear_message(db_path):
    with Store(db_path) as s:
        s.execute("INSERT INTO schema_version (version, description) VALUES (?, 'future')", [SCHEMA_VERSION + 5])
    with pytest.raises(StoreError, match="newer inference-workbench"):
        Store(db_path)


def test_not_a_database_file(tmp_path):
    p = tmp_path / "x.duckdb"
    p.write_text("hello, I am text")
    with pytest.raises(StoreError):
        Store(p)


def test_file_held_by_another_process_names_it(db_path):
    Store(db_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({db_path!r})
            print("locked", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError) as e:
            Store(db_path)
        assert "in use by another process" in str(e.value)
        assert str(holder.pid) in str(e.value)
    finally:
        holder.stdin.close()
        holder.wait(10)


def test_recorder_keeps_session_messages_requests_and_every_token(db_path, embedded_engine):
    store = Store(db_path)
    rec = Recorder(store)
    embedded_engine.add_listener(rec.on_event)
    try:
        sid = rec.new_session("chat", model="smollm2-135m", backend="llamacpp", title="t")
        rec.add_message(sid, "user", "Say hi")
        h = embedded_engine.submit("Say hi", SamplingParams(max_tokens=12, temperature=0),
                                   tags={"session_id": sid, "assistant_message": True})
        r = h.result(60)
        rec.flush()
    finally:
        embedded_engine.remove_listener(rec.on_event)
        rec.close()
    n_tok = store.execute("SELECT count(*) FROM token_events WHERE request_id = ? AND token_id >= 0", [r.request_id]).fetchone()[0]
    assert n_tok == r.metrics.output_tokens
    row = store.execute("SELECT status, output_tokens, ttft_ms, text FROM requests WHERE id = ?", [r.request_id]).fetchone()
    assert row[0] == "finished" and row[1] == r.metrics.output_tokens and row[3] == r.text
    assert abs(row[2] - r.metrics.ttft_s * 1e3) < 1e-6
    s = get_session(store, sid[:6])
    assert [m["role"] for m in s["messages"]] == ["user", "assistant"]
    assert s["messages"][1]["content"] == r.text
    assert len(s["requests"][0]["itl_ms"]) == r.metrics.output_tokens - 1
    assert session_summary(s)["p50_ttft_ms"] == pytest.approx(row[2])
    assert list_sessions(store)[0]["id"] == sid
    # no step_session_id was set: every engine step is kept, under no session. llama.cpp steps once
    # a token; the last step's event is emitted just after the result is handed over, so it may
    # miss the flush
    n_steps, n_unowned = store.execute("SELECT count(*), count(*) FILTER (WHERE session_id IS NULL) FROM steps").fetchone()
    assert n_unowned == n_steps and n_steps in (r.metrics.output_tokens - 1, r.metrics.output_tokens)
    store.close()


def test_cancelled_request_keeps_partial_reply(db_path, embedded_engine):
    store = Store(db_path)
    rec = Recorder(store)
    embedded_engine.add_listener(rec.on_event)
    try:
        sid = rec.new_session("chat")
        h = embedded_engine.submit("Write a long poem about rivers.", SamplingParams(max_tokens=300, temperature=0),
                                   tags={"session_id": sid, "assistant_message": True})
        n = 0
        for ev in h:
            n += len(ev.token_ids)
            if n >= 4:
                h.cancel()
        r = h.result(30)
        rec.flush()
    finally:
        embedded_engine.remove_listener(rec.on_event)
        rec.close()
    status, out = store.execute("SELECT status, output_tokens FROM requests WHERE id = ?", [r.request_id]).fetchone()
    assert status == "cancelled" and out == r.metrics.output_tokens >= 4
    assert store.execute("SELECT count(*) FROM token_events WHERE request_id = ? AND token_id >= 0", [r.request_id]).fetchone()[0] == out
    msg = store.execute("SELECT content FROM messages WHERE session_id = ? AND role = 'assistant'", [sid]).fetchone()[0]
    assert msg == r.text and msg
    store.close()


def test_unknown_session_id(db_path):
    with Store(db_path) as s:
        with pytest.raises(StoreError, match="no session"):
            get_session(s, "deadbeef")
