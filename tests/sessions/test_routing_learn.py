"""`workbench route learn` on a real DuckDB file: (user turn -> tool called) examples read from an
imported tau-bench trace, stored once, used by `route query` (and dropped with --no-examples), and
the router's abstention with examples; bad input is one line and a non-zero exit."""
import json
from pathlib import Path

import duckdb
import pytest

from sessions.routing import ToolRouter, load_tools
from sessions.routing_examples import examples_from_trace, load_examples, save_examples
from sessions.schema import SCHEMA_VERSION
from sessions.store import Store
from sessions.traces.bulk import import_files
from sessions.traces.store import load_trace, trace_ids

ROOT = Path(__file__).resolve().parents[2]
TRACE = ROOT / "tests" / "fixtures" / "traces" / "tau-bench" / "gpt-4o-airline.first10.json"
TOOLS = Path(__file__).parent / "fixtures" / "tau_airline_tools.json"  # hand-written from the tool names the trace calls


@pytest.fixture(scope="module")
def emb():
    from engine.embeddings import load_embedder

    return load_embedder()


def test_examples_from_an_imported_trace(tmp_path):
    with Store(tmp_path / "wb.duckdb") as store:
        import_files(store, [str(TRACE)])
        found = [e for tid in trace_ids(store) for e in examples_from_trace(load_trace(store, tid))]
        assert len(found) >= 20
        pairs = {(e.query, e.tool) for e in found}
        assert any(t == "get_user_details" and "user id" in q.lower() for q, t in pairs)
        assert all(e.trace_id and e.source == "trace" for e in found)
        assert save_examples(store, found) == len(pairs)
        assert save_examples(store, found) == 0  # a turn and tool are kept once
        assert set(load_examples(store)) == pairs
        assert load_examples(store, ["think"]) == [(q, t) for q, t in load_examples(store) if t == "think"]


def test_route_learn_then_query_uses_the_examples(wb, db_path):
    assert wb("--db", db_path, "import", str(TRACE)).returncode == 0
    r = wb("--db", db_path, "route", "learn", "--json")
    assert r.returncode == 0, r.stderr
    learned = json.loads(r.stdout)
    assert learned["traces"] == 10 and learned["new"] == learned["stored"] >= 20
    assert json.loads(wb("--db", db_path, "route", "learn", "--json").stdout)["new"] == 0

    con = duckdb.connect(db_path, read_only=True)  # the examples are rows of the file, not process state
    assert con.execute("SELECT count(*) FROM route_examples").fetchone()[0] == learned["stored"]
    assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    con.close()

    turn = "Sure, my user ID is mia_li_3668"
    with_ex = json.loads(wb("--db", db_path, "route", "query", turn, "--tools", str(TOOLS), "--json").stdout)
    without = json.loads(wb("--db", db_path, "route", "query", turn, "--tools", str(TOOLS), "--json",
                            "--no-examples").stdout)
    assert with_ex["examples"] == learned["stored"] and without["examples"] == 0
    assert with_ex["tools"][0] == "get_user_details"
    assert with_ex["scores"][0] > without["scores"][0]

    listed = json.loads(wb("--db", db_path, "route", "examples", "--json").stdout)
    assert sum(r["examples"] for r in listed) == learned["stored"]


def test_examples_move_a_tool_up_and_abstain_still_works(emb):
    tools = load_tools(TOOLS)
    turn = "I'd like to add a checked bag to my trip, reservation 4WQ150"
    bare = ToolRouter(tools, 3, 0.0, emb)
    learned = ToolRouter(tools, 3, 0.0, emb, examples=[
        ("Can I bring one more suitcase on reservation ZFA04Y?", "update_reservation_baggages"),
        ("please add two checked bags to my booking", "update_reservation_baggages"),
        ("an example for a tool that is not in the list", "no_such_tool"),  # ignored
    ])
    assert learned.example_count == 2
    assert learned.route(turn).tools[0] == "update_reservation_baggages"
    assert bare.route(turn).scores[0] < learned.route(turn).scores[0]
    strict = ToolRouter(tools, 3, 0.6, emb, examples=learned.examples)
    r = strict.route("tell me a joke about penguins")
    assert r.abstained and r.tools == [] and r.tokens_sent == 0
    assert not strict.route("please add two checked bags to my booking for tomorrow").abstained


def test_route_learn_bad_input_is_one_line(wb, db_path, tmp_path):
    r = wb("--db", db_path, "route", "learn")
    assert r.returncode != 0 and "no imported traces" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = wb("--db", db_path, "route", "learn", "feedbeef")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "x"}\n')
    r = wb("--db", db_path, "route", "learn", "--from-file", str(bad))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "line 1" in r.stderr
    r = wb("--db", db_path, "route", "query", "hello", "--tools", str(TOOLS), "--k", "0")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1


def test_route_learn_from_a_labelled_file(wb, db_path, tmp_path):
    f = tmp_path / "labelled.jsonl"
    f.write_text('{"query": "what is 17 times 23", "tool": "calculate"}\n{"query": "hi there", "tool": null}\n')
    r = wb("--db", db_path, "route", "learn", "--from-file", str(f), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["new"] == 1  # the turn with no tool teaches nothing
