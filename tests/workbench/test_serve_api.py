"""The wire-format helpers of `workbench serve` on their own: tool calls parsed out of replies,
streamed text held back where a tool call may start, JSON objects cut at their end."""
import json

from workbench.serve_api import ReplyText, fold_tools, json_object_end, parse_tool_calls

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def test_hermes_blocks_and_bare_json_become_calls():
    content, calls = parse_tool_calls('Let me look.\n<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>')
    assert content == "Let me look." and calls[0]["function"] == {"name": "f", "arguments": '{"x": 1}'}
    content, calls = parse_tool_calls('```json\n{"name": "g", "parameters": {"q": "a"}}\n```')
    assert content is None and calls[0]["function"]["name"] == "g" and json.loads(calls[0]["function"]["arguments"]) == {"q": "a"}
    # an unclosed block at the end of a cut reply still counts; prose with braces does not
    assert parse_tool_calls('<tool_call>{"name": "f", "arguments": {}}')[1]
    assert parse_tool_calls("use {curly} braces") == ("use {curly} braces", [])
    assert parse_tool_calls("<tool_call>not json</tool_call>")[1] == []


def test_streamed_text_stops_where_a_call_may_begin():
    r = ReplyText(tools=True)
    assert r.feed("Sure, ") == "Sure, "
    assert r.feed("<tool") == ""  # may open a tag: held
    assert r.feed('_call>{"name": "f", "arguments": {}}</tool_call>') == ""
    content, calls = r.finish()
    assert calls and r.tail(content) == ""
    plain = ReplyText(tools=True)
    assert plain.feed("a <b>") == "a <b>"


def test_json_object_cut_at_its_end():
    assert json_object_end('{"a": "}", "b": [1, {"c": 2}]} trailing') == 30
    assert json_object_end('{"a": 1') is None
    r = ReplyText(prefill="{", json_object=True)
    assert r.feed('"a": 1} and more') == '{"a": 1}'
    assert r.finish() == ('{"a": 1}', [])


def test_fold_tools_writes_history_the_way_the_model_is_asked_to():
    msgs = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "type": "function",
                                                                 "function": {"name": "f", "arguments": {"x": 1}}}]},
            {"role": "tool", "content": "42", "tool_call_id": "1"}]
    out = fold_tools(msgs, [TOOL], "auto")
    assert out[0]["role"] == "system" and '"name": "f"' in out[0]["content"]
    assert '<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call>' in out[2]["content"]
    assert "tool_calls" not in out[2] and out[3] == {"role": "tool", "content": "42"}
