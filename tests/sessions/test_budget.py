"""Context budget: categories sum exactly to the rendered prompt's token count for every call of
every trace fixture, attribution lands in the right category, warnings carry evidence, the policy
trims what it says, and the panel only reads."""
import copy
import json
from pathlib import Path

import pytest

from sessions.budget import (
    CATEGORIES, CURRENT, DOCUMENTS, HISTORY, OVERHEAD, SYSTEM, TOOL_RESULTS, TOOLS, BudgetConfig, BudgetReport,
    BudgetTokenizer, LLMCall, account_call, apply_policy, calls_from_trace, render_messages, segment_messages, trimmed_call,
)
from sessions.traces.importers import parse_file

FX = Path(__file__).parent / "fixtures" / "traces"
FIXTURES = sorted(p.name for p in FX.iterdir() if not p.name.startswith("bad_"))
TOOLS_FILE = Path(__file__).resolve().parents[2] / "sessions" / "data" / "routing_tools.json"


@pytest.fixture(scope="module")
def tok(embedded_engine):
    return BudgetTokenizer.from_engine(embedded_engine)


def _rendered_count(engine, call, cfg):
    return len(engine.render_prompt(render_messages(segment_messages(call, cfg))))


@pytest.mark.parametrize("name", FIXTURES)
def test_categories_sum_to_rendered_prompt_for_every_call(name, embedded_engine, tok):
    cfg = BudgetConfig()
    tools = json.loads(TOOLS_FILE.read_text())[:6]
    n_calls = 0
    for trace in parse_file(FX / name).traces:
        for call in calls_from_trace(trace):
            for with_tools in (False, True):
                c = copy.copy(call)
                c.tools = tools if with_tools else call.tools
                b = account_call(c, tok, cfg)
                assert set(b.categories) == set(CATEGORIES)
                assert sum(b.categories.values()) == b.total_tokens
                if c.messages:
                    assert b.total_tokens == _rendered_count(embedded_engine, c, cfg)
                    assert all(v >= 0 for v in b.categories.values())
                    assert b.categories[TOOLS] > 0 if with_tools else b.categories[TOOLS] == 0
                else:  # the format did not record this call's input; said, not guessed
                    assert b.total_tokens == 0 and not b.input_recorded
            n_calls += 1
    assert n_calls > 0


def test_attribution_by_category(embedded_engine, tok):
    question = "Given all that, which config file breaks the build?"
    doc = "<documents>\nsetuptools 40 is pinned in tox.ini; pyproject needs 61.\n</documents>\n"
    msgs = [
        {"role": "system", "content": "You are a build engineer."},
        {"role": "user", "content": "Why does the build fail?"},
        {"role": "assistant", "content": "Let me read it.", "tool_calls": [{"id": "c1", "function": {"name": "read_file", "arguments": {"path": "tox.ini"}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "[tox]\nrequires = setuptools==40.0"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c2", "function": {"name": "search_docs", "arguments": {"q": "setuptools"}}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "setuptools 61 adds PEP 621 support."},
        {"role": "user", "content": doc + question},
    ]
    b = account_call(LLMCall("x", 0, msgs), tok, BudgetConfig())
    c = b.categories
    count = embedded_engine.count_tokens
    assert c[SYSTEM] == count("You are a build engineer.")
    # the question follows a document block in the same message: a token may merge across the seam
    assert abs(c[CURRENT] - count(question)) <= 1
    assert c[TOOL_RESULTS] == count("[tox]\nrequires = setuptools==40.0")
    assert c[DOCUMENTS] > count("setuptools 61 adds PEP 621 support.")  # search result + pasted block
    assert c[HISTORY] > count("Why does the build fail?")  # includes both tool calls as text
    assert c[TOOLS] == 0 and c[OVERHEAD] > 0
    assert sum(c.values()) == b.total_tokens


def test_no_system_message_template_adds_its_own(embedded_engine, tok):
    """SmolLM2's template injects a default system prompt: that is overhead, not the user's."""
    b = account_call(LLMCall("x", 0, [{"role": "user", "content": "hi"}]), tok, BudgetConfig())
    assert b.categories[SYSTEM] == 0
    assert b.categories[OVERHEAD] > 15
    assert b.total_tokens == len(embedded_engine.render_prompt([{"role": "user", "content": "hi"}]))


def test_tool_definitions_warning_and_overflow(tok):
    tools = json.loads(TOOLS_FILE.read_text())
    call = LLMCall("x", 0, [{"role": "user", "content": "lights off please"}], tools)
    b = account_call(call, tok, BudgetConfig())
    kinds = {w["kind"]: w for w in b.warnings}
    assert b.context_window == 2048  # the engine's own window
    assert kinds["tool_definitions_share"]["evidence"]["tokens"] == b.categories[TOOLS] > 0.1 * 2048
    assert "overflow" in kinds and b.free_tokens < 0
    small = account_call(LLMCall("x", 0, call.messages, tools[:2]), tok, BudgetConfig())
    assert not small.warnings


def test_repeated_content_and_tool_results_share(tok):
    calls = calls_from_trace(parse_file(FX / "openhands_events.json").traces[0])
    b = account_call(calls[-1], tok, BudgetConfig())
    rep = [w for w in b.warnings if w["kind"] == "repeated_content"][0]
    chunk = rep["evidence"]["chunks"][0]
    assert len(chunk["messages"]) >= 2 and chunk["wasted_tokens"] > 0 and len(chunk["hash"]) == 12
    assert not [w for w in b.warnings if w["kind"] == "tool_results_share"]
    big = "line of build log output that goes on\n" * 200
    msgs = [{"role": "user", "content": "build it"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "a", "function": {"name": "run", "arguments": {}}}]},
            {"role": "tool", "tool_call_id": "a", "content": big}]
    b2 = account_call(LLMCall("y", 0, msgs), tok, BudgetConfig())
    share = [w for w in b2.warnings if w["kind"] == "tool_results_share"][0]
    assert share["evidence"]["largest"][0]["message"] == 2
    assert share["evidence"]["share"] > 0.25


def test_long_context_before_question(tok):
    doc = "<context>\n" + "The quarterly numbers were flat in every region.\n" * 120 + "</context>\n"
    cfg = BudgetConfig(long_context_tokens=500)
    b = account_call(LLMCall("x", 0, [{"role": "user", "content": doc + "What changed?"}]), tok, cfg)
    w = [w for w in b.warnings if w["kind"] == "long_context_before_question"][0]
    assert w["evidence"]["tokens_before_question"] >= b.categories[DOCUMENTS] >= 500
    short = account_call(LLMCall("x", 0, [{"role": "user", "content": "What changed?"}]), tok, cfg)
    assert not short.warnings


def test_growth_and_overflow_step(tok):
    calls = calls_from_trace(parse_file(FX / "openai_orders_nplus1.json").traces[0])
    report = BudgetReport("t", [account_call(c, tok, BudgetConfig()) for c in calls])
    g = report.growth()
    assert [x["step"] for x in g] == list(range(len(calls)))
    assert all(x["delta_total"] == sum(x["delta"].values()) for x in g)
    assert g[1]["delta"][TOOL_RESULTS] > 0 and g[1]["delta"][SYSTEM] == 0
    over = report.overflow()
    last = report.calls[-1]
    assert over["projected"] and over["overflow_step"] > last.step
    # the projection is the first step whose prompt + reserve passes the window
    steps = over["overflow_step"] - last.step
    assert last.total_tokens + steps * over["mean_growth_per_step"] + last.output_reserve > last.context_window
    assert last.total_tokens + (steps - 1) * over["mean_growth_per_step"] + last.output_reserve <= last.context_window
    tight = BudgetReport("t", [account_call(c, tok, BudgetConfig(output_reserve=1700)) for c in calls])
    assert tight.overflow() == {"overflow_step": next(c.step for c in tight.calls if c.free_tokens < 0), "projected": False}


def test_policy_trims_and_produces_the_trimmed_list(embedded_engine, tok):
    calls = calls_from_trace(parse_file(FX / "openai_orders_nplus1.json").traces[0])
    call = calls[-1]
    before = account_call(call, tok, BudgetConfig())
    cfg = BudgetConfig(caps={TOOL_RESULTS: 40, HISTORY: 60, SYSTEM: 1})
    plan = apply_policy(call, tok, cfg)
    after = account_call(trimmed_call(call, plan), tok, cfg)
    assert plan.actions and {a.action for a in plan.actions} <= {"stub", "drop"}
    assert after.total_tokens < before.total_tokens
    assert after.total_tokens == len(embedded_engine.render_prompt(render_messages(segment_messages(trimmed_call(call, plan), cfg))))
    assert after.categories[HISTORY] <= 60 or after.categories[HISTORY] < before.categories[HISTORY]
    # the system prompt and the question are never touched; being over their cap is reported
    assert plan.messages[0] == call.messages[0]
    assert any(m["role"] == "user" and m["content"] == call.messages[1]["content"] for m in plan.messages)
    assert plan.over_cap_untrimmed == {SYSTEM: before.categories[SYSTEM]}
    # every tool result left still follows the assistant call that asked for it
    ids = set()
    for m in plan.messages:
        ids |= {tc["id"] for tc in m.get("tool_calls") or []}
        if m["role"] == "tool":
            assert m["tool_call_id"] in ids
    assert call.messages == calls_from_trace(parse_file(FX / "openai_orders_nplus1.json").traces[0])[-1].messages  # input untouched


def test_policy_caps_tool_definitions(tok):
    tools = json.loads(TOOLS_FILE.read_text())[:10]
    call = LLMCall("x", 0, [{"role": "user", "content": "hi"}], tools)
    plan = apply_policy(call, tok, BudgetConfig(caps={TOOLS: 300}))
    assert 0 < len(plan.tools) < 10
    assert plan.actions[0].action == "drop_tools" and plan.actions[0].tokens > 0


def test_bad_caps_are_one_clear_error():
    from sessions.errors import SessionsError

    with pytest.raises(SessionsError, match="not a category"):
        BudgetConfig.from_dict({"caps": {"everything": 10}})
    with pytest.raises(SessionsError, match="whole number"):
        BudgetConfig.from_dict({"caps": {"history": -1}})


async def test_opening_the_panel_adds_no_tokens(embedded_engine, tok):
    from textual.app import App, ComposeResult

    from panels.budget_panel import BudgetPanel

    calls = calls_from_trace(parse_file(FX / "openhands_events.json").traces[0])
    msgs_before = copy.deepcopy([c.messages for c in calls])
    report = BudgetReport("trace t", [account_call(c, tok, BudgetConfig()) for c in calls])
    over = report.overflow()
    data = [{"source": "trace t", **c.to_dict(), "overflow_step": over["overflow_step"], "overflow_projected": True}
            for c in report.calls]
    stats_before = embedded_engine.stats()["requests_finished"]

    class Host(App):
        def compose(self) -> ComposeResult:
            yield BudgetPanel(data)

    app = Host()
    async with app.run_test(size=(140, 40)) as pilot:
        panel = app.query_one(BudgetPanel)
        await pilot.pause()
        assert len(panel.rows) == len(calls)
        assert any("repeated_content" in line for line in panel.warning_lines)
        assert str(panel.rows[-1]).rstrip().endswith(f"free {data[-1]['free_tokens']}")
    # nothing was sent to the engine and no context changed
    assert embedded_engine.stats()["requests_finished"] == stats_before
    assert [c.messages for c in calls] == msgs_before
    again = [account_call(c, tok, BudgetConfig()).categories for c in calls]
    assert again == [c.categories for c in report.calls]
