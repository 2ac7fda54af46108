"""The commands that take a trace, run for real on the whole corpus of real files: `import DIR`,
`traces`, `trace show`, `findings` (and its alias `nplus1`), `budget`; none ends in a traceback."""
import json
import shutil
from pathlib import Path

import pytest

from sessions.budget import BudgetConfig, BudgetTokenizer, budget_rows, calls_from_trace
from sessions.traces.importers import parse_file

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "traces"
FILES = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".md")


def ok(r):
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr
    return r


def test_every_command_on_every_real_file(wb, db_path, capsys):
    from workbench.cli import main

    r = ok(wb("--db", db_path, "import", str(CORPUS)))
    assert f"imported {len(FILES)} of {len(FILES)} files" in r.stdout
    assert "skipped 1 file(s) that are not trace files" in r.stdout  # SOURCES.md
    listed = json.loads(ok(wb("--db", db_path, "traces", "--json")).stdout)
    assert len(listed) == sum(len(parse_file(p).traces) for p in FILES)
    text = ok(wb("--db", db_path, "traces")).stdout
    assert "not recorded" in text and "start times (durations only)" in text and "llm calls" in text
    for t in listed:  # in this process: sixty interpreters would start slower than they show
        assert main(["--db", db_path, "trace", "show", t["id"]]) == 0
        assert main(["--db", db_path, "trace", "show", t["id"], "--json"]) == 0
    capsys.readouterr()
    findings = json.loads(ok(wb("--db", db_path, "findings", "--json")).stdout)
    assert {"retry", "n_plus_one", "redundant"} <= {f["kind"] for f in findings}
    alias = json.loads(ok(wb("--db", db_path, "nplus1", "--json")).stdout)
    assert alias == findings
    ok(wb("--db", db_path, "findings"))
    bad = wb("--db", db_path, "findings", "--kind", "bogus")
    assert bad.returncode == 2 and "known: retry, n_plus_one" in bad.stderr


@pytest.mark.parametrize("rel", ["langfuse/microsoft-agent-2025-10-14.seed.json",  # tool-call ids that are lists
                                 "langfuse/koog-2025-08-26.trace.json"])  # prompts as gen_ai.prompt.N.*
def test_budget_command_on_real_files(wb, db_path, rel):
    rows = json.loads(ok(wb("--db", db_path, "budget", str(CORPUS / rel), "--json")).stdout)
    assert rows and all(r["total_tokens"] > 0 for r in rows)


def test_budget_of_every_trace(embedded_engine):
    """The first two and the last call of every trace (tokenizing all of them takes minutes)."""
    tok = BudgetTokenizer.from_engine(embedded_engine)
    cfg = BudgetConfig()
    accounted = 0
    for p in FILES:
        for t in parse_file(p).traces:
            calls = calls_from_trace(t)
            calls = calls[:2] + calls[2:][-1:]
            rows = budget_rows(t.trace_id, calls, lambda model: tok, cfg, policy=False)
            accounted += len(rows)
            # a call whose input the format kept has a budget (Claude Agent SDK turns come without one)
            assert all(r["total_tokens"] > 0 for r, c in zip(rows, calls) if c.messages), p
            if p.parent.name == "openhands" and t.format == "openhands" and t.has_timings:
                # the system prompt and the tool definitions are in every call
                assert all(r["categories"]["system_prompt"] > 0 and r["categories"]["tool_definitions"] > 0 for r in rows)
    assert accounted > 100


def test_a_directory_with_a_bad_file_stores_the_rest(wb, db_path, tmp_path):
    d = tmp_path / "traces"
    (d / "nested").mkdir(parents=True)
    shutil.copy(CORPUS / "litellm/litellm_proxy__deepseek__deepseek-chat-1757015054.055.json", d / "nested" / "a.json")
    shutil.copy(CORPUS / "swe-agent/function_calling_simple.traj", d / "b.traj")
    (d / "c.json").write_text('{"spans": 3, "kind": "mine"}')
    (d / "notes.txt").write_text("not a trace")
    r = wb("--db", db_path, "import", str(d))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (f"workbench: error: {d / 'c.json'}: $: not a trace format this workbench knows: an object with keys "
            f"spans, kind; known formats: otlp, jaeger") in r.stderr
    assert "imported 2 of 3 files" in r.stdout and "skipped 1 file(s)" in r.stdout
    listed = json.loads(wb("--db", db_path, "traces", "--json").stdout)
    assert sorted(t["format"] for t in listed) == ["litellm", "swe-agent"]
    empty = tmp_path / "empty"
    empty.mkdir()
    r = wb("--db", db_path, "import", str(empty))
    assert r.returncode == 2 and "no trace files in" in r.stderr
