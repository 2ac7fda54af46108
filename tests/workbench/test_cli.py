"""The real `workbench` command, run as a process."""
import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from tests.conftest import ROOT, run_workbench


def _chat_json(db, *extra, input=None):
    p = run_workbench("--db", db, "chat", "--json", "--temperature", "0", "--max-tokens", "16", *extra, input=input)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_chat_json_then_sessions_list_and_show(db_path):
    out = _chat_json(db_path, "--prompt", "What is 2 + 2?")
    assert out["text"]
    for key in ("ttft_ms", "e2el_ms", "tpot_ms", "prompt_tokens", "output_tokens"):
        assert key in out["metrics"]
    assert out["metrics"]["ttft_ms"] > 0 and out["metrics"]["output_tokens"] > 0

    p = run_workbench("--db", db_path, "sessions", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["id"] for r in rows] == [out["session_id"]]

    p = run_workbench("sessions", "show", out["session_id"], "--json", "--db", db_path)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert [m["role"] for m in s["messages"]][-2:] == ["user", "assistant"]
    assert s["messages"][-1]["content"] == out["text"]
    assert s["requests"][0]["ttft_ms"] == pytest.approx(out["metrics"]["ttft_ms"])
    assert len(s["requests"][0]["itl_ms"]) == out["metrics"]["output_tokens"] - 1

    p = run_workbench("--db", db_path, "sessions", "show", out["session_id"])
    assert p.returncode == 0 and "p50 ttft" in p.stdout and out["text"][:10] in p.stdout


def test_chat_reads_prompt_from_stdin_and_streams_text(db_path):
    p = run_workbench("--db", db_path, "chat", "--prompt", "-", "--temperature", "0", "--max-tokens", "8",
                      "--system", "Answer briefly.", input="Name a fruit.")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip()
    assert "ttft" in p.stderr and "session" in p.stderr
    con = duckdb.connect(db_path, read_only=True)
    roles = [r[0] for r in con.execute("SELECT role FROM messages ORDER BY seq").fetchall()]
    assert roles == ["system", "user", "assistant"]
    assert con.execute("SELECT content FROM messages WHERE role='user'").fetchone()[0] == "Name a fruit."


@pytest.mark.parametrize(
    "args, needle",
    [
        (["chat", "--prompt", "   "], "empty prompt"),
        (["--model", "/nonexistent/model.gguf", "chat", "--prompt", "hi"], "does not exist"),
        (["--model", "no-such-model", "chat", "--prompt", "hi"], "unknown model"),
        (["--model", str(ROOT / "pyproject.toml"), "chat", "--prompt", "hi"], "not a GGUF"),
        (["sessions", "show", "nope"], "no session"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(db_path, args, needle):
    p = run_workbench("--db", db_path, *args)
    assert p.returncode != 0
    assert needle in p.stderr
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_newer_database_is_refused(db_path):
    run_workbench("--db", db_path, "sessions")
    con = duckdb.connect(db_path)
    con.execute("INSERT INTO schema_version (version, description) VALUES (999, 'future')")
    con.close()
    p = run_workbench("--db", db_path, "sessions")
    assert p.returncode == 2 and "newer inference-workbench" in p.stderr and "Traceback" not in p.stderr


def test_locked_database_names_the_holder(db_path):
    run_workbench("--db", db_path, "sessions")
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb,sys; c=duckdb.connect({db_path!r}); print('ok', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        p = run_workbench("--db", db_path, "chat", "--prompt", "hi", "--max-tokens", "4")
        assert p.returncode == 2
        assert f"PID {holder.pid}" in p.stderr and "Traceback" not in p.stderr
    finally:
        holder.stdin.close()
        holder.wait(10)


def test_ctrl_c_mid_stream_keeps_partial_reply(db_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "--db", db_path, "chat", "--temperature", "0", "--max-tokens", "2000",
         "--prompt", "Write a very long story about a lighthouse keeper, in many chapters."],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
    )
    got = b""
    deadline = time.monotonic() + 120
    while len(got) < 20 and time.monotonic() < deadline:
        got += os.read(proc.stdout.fileno(), 64)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and b"partial reply is saved" in err
    con = duckdb.connect(db_path, read_only=True)
    status, n_out, text = con.execute("SELECT status, output_tokens, text FROM requests").fetchone()
    assert status == "cancelled" and 0 < n_out < 2000
    assert con.execute("SELECT count(*) FROM token_events WHERE token_id >= 0").fetchone()[0] == n_out
    assert con.execute("SELECT content FROM messages WHERE role='assistant'").fetchone()[0] == text


def test_help_lists_the_commands():
    p = run_workbench("--help")
    assert p.returncode == 0
    for cmd in ("chat", "sessions"):
        assert cmd in p.stdout


def test_chat_on_a_newer_database_fails_with_one_line(db_path):
    run_workbench("--db", db_path, "sessions")
    con = duckdb.connect(db_path)
    con.execute("INSERT INTO schema_version (version, description) VALUES (999, 'future')")
    con.close()
    p = run_workbench("--db", db_path, "chat", "--prompt", "hi", "--max-tokens", "2", "--temperature", "0")
    assert p.returncode == 2
    assert "newer inference-workbench" in p.stderr and "Traceback" not in p.stderr
    assert len([line for line in p.stderr.splitlines() if line.startswith("workbench:")]) == 1
