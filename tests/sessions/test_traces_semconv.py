"""Span attributes under every naming scheme are read alike (kind, model, tokens, prompt, tool call): OTel
GenAI new and old (span events), OpenLLMetry, OpenInference, OpenLIT, Vercel AI SDK; nested LLM layers are one call."""
import json

from sessions.traces.importers import parse_bytes


def kv(k, v):
    if isinstance(v, int):
        return {"key": k, "value": {"intValue": str(v)}}
    return {"key": k, "value": {"stringValue": v}}


def span(sid, name, attrs, parent=None, start=0, end=100, events=None, tid="a" * 32):
    s = {"traceId": tid, "spanId": sid, "name": name, "startTimeUnixNano": str(1_700_000_000_000_000_000 + start * 10**6),
         "endTimeUnixNano": str(1_700_000_000_000_000_000 + end * 10**6), "attributes": [kv(k, v) for k, v in attrs.items()]}
    if parent:
        s["parentSpanId"] = parent
    if events:
        s["events"] = [{"name": n, "attributes": [kv(k, v) for k, v in a.items()]} for n, a in events]
    return s


def trace(*spans):
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}
    return parse_bytes(json.dumps(doc).encode(), "t.json").traces[0]


def llm_spans(t):
    return [s for s in t.spans if s.kind == "llm"]


def test_openllmetry_llm_span_with_indexed_prompts():
    t = trace(span("0000000000000001", "openai.chat", {
        "llm.request.type": "chat", "gen_ai.system": "OpenAI", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.prompt_tokens": 31, "gen_ai.usage.completion_tokens": 7,
        "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "Be brief.",
        "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "Weather in Oslo?",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.tool_calls.0.name": "get_weather",
        "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Oslo"}',
        "gen_ai.request.functions.0.name": "get_weather", "gen_ai.request.functions.0.parameters": '{"type": "object"}'}))
    [s] = llm_spans(t)
    assert (s.attributes["gen_ai.usage.input_tokens"], s.attributes["gen_ai.usage.output_tokens"]) == (31, 7)
    assert [(m.role, m.content) for m in s.input_messages] == [("system", "Be brief."), ("user", "Weather in Oslo?")]
    assert s.output_messages[0].tool_calls[0].arguments == {"city": "Oslo"}
    assert s.attributes["gen_ai.tool.definitions"][0]["function"]["name"] == "get_weather"
    assert not any(k.startswith("gen_ai.prompt.") for k in s.attributes)  # kept once, in the messages


def test_openinference_llm_and_tool_spans():
    t = trace(
        span("0000000000000001", "ChatCompletion", {
            "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
            "llm.token_count.prompt": 12, "llm.token_count.completion": 3,
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.contents.0.message_content.text": "hi",
            "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "hello"}),
        span("0000000000000002", "lookup", {"openinference.span.kind": "TOOL", "tool.name": "lookup",
                                            "input.value": '{"id": 3}', "output.value": "found"}, start=100, end=150))
    [s] = llm_spans(t)
    assert s.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert (s.attributes["gen_ai.usage.input_tokens"], s.attributes["gen_ai.usage.output_tokens"]) == (12, 3)
    assert s.input_messages[0].content == "hi" and s.output_messages[0].content == "hello"
    [tool] = [x for x in t.spans if x.kind == "tool"]
    assert (tool.tool_call.name, tool.tool_call.arguments, tool.tool_call.result) == ("lookup", {"id": 3}, "found")


def test_openlit_and_old_genai_span_events():
    t = trace(span("0000000000000001", "chat gpt-4o", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                                                       "gen_ai.usage.input_tokens": 5},
                   events=[("gen_ai.content.prompt", {"gen_ai.prompt": "user: hi"}),
                           ("gen_ai.content.completion", {"gen_ai.completion": "hello"})]),
              span("0000000000000002", "chat gpt-4o", {"gen_ai.operation.name": "chat", "gen_ai.system": "openai"},
                   events=[("gen_ai.system.message", {"content": "Be brief."}), ("gen_ai.user.message", {"content": "hi"}),
                           ("gen_ai.choice", {"message": json.dumps({"content": "hello"})})], start=200, end=300))
    a, b = llm_spans(t)
    assert a.input_messages[0].content == "user: hi" and a.output_messages[0].content == "hello"
    assert [m.role for m in b.input_messages] == ["system", "user"] and b.output_messages[0].content == "hello"


def test_vercel_ai_sdk_tool_call_and_nested_generate():
    t = trace(span("0000000000000001", "ai.generateText", {"ai.operationId": "ai.generateText", "ai.model.id": "gpt-4o",
                                                           "ai.usage.promptTokens": 70, "ai.usage.completionTokens": 20}),
              span("0000000000000002", "ai.generateText.doGenerate", {"ai.operationId": "ai.generateText.doGenerate",
                   "ai.model.id": "gpt-4o", "ai.usage.promptTokens": 70, "ai.usage.completionTokens": 20},
                   parent="0000000000000001"),
              span("0000000000000003", "ai.toolCall", {"ai.operationId": "ai.toolCall", "ai.toolCall.name": "weather",
                                                       "ai.toolCall.id": "c1", "ai.toolCall.args": '{"city": "Oslo"}'},
                   parent="0000000000000001", start=100, end=120))
    [s] = llm_spans(t)
    assert s.name == "ai.generateText.doGenerate" and s.attributes["gen_ai.usage.input_tokens"] == 70
    [tool] = [x for x in t.spans if x.kind == "tool"]
    assert (tool.tool_call.name, tool.tool_call.call_id) == ("weather", "c1")


def test_adk_style_nesting_counts_one_call_and_its_tokens_once():
    """ADK's call_llm around generate_content around the SDK's openai.chat, each with the usage:
    one model invocation, its tokens counted once, the prompt taken from the layer that had it."""
    usage = {"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10}
    t = trace(span("0000000000000001", "invoke_agent root", {"gen_ai.operation.name": "invoke_agent"}, end=1000),
              span("0000000000000002", "call_llm", {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o",
                   **usage, "llm.input_messages.0.message.role": "user",
                   "llm.input_messages.0.message.content": "hi"}, parent="0000000000000001", end=900),
              span("0000000000000003", "generate_content gpt-4o", {"gen_ai.operation.name": "generate_content", **usage},
                   parent="0000000000000002", end=890),
              span("0000000000000004", "openai.chat", {"llm.request.type": "chat", "gen_ai.request.model": "gpt-4o", **usage},
                   parent="0000000000000003", end=880))
    [s] = llm_spans(t)
    assert s.name == "openai.chat"
    assert s.input_messages[0].content == "hi"  # from the outer layer, which recorded it
    assert sum(x.attributes.get("gen_ai.usage.input_tokens", 0) for x in llm_spans(t)) == 100
    assert {x.name for x in t.spans if x.attributes.get("workbench.llm_layer") == "wrapper"} == {"call_llm", "generate_content gpt-4o"}


def test_tokens_on_agent_spans_are_not_llm_calls():
    t = trace(span("0000000000000001", "invoke_agent a", {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "m",
                                                          "gen_ai.usage.input_tokens": 50}),
              span("0000000000000002", "chat m", {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 50},
                   parent="0000000000000001"))
    assert [s.name for s in llm_spans(t)] == ["chat m"]


def test_protobuf_json_ids_are_hex():
    t = trace(span("GBfR2+pw0Sc=", "x", {"gen_ai.operation.name": "chat"}, tid="C3K649LkbzZjnheP9BpFTA=="))
    assert t.spans[0].span_id == "1817d1dbea70d127" and t.source_key == "0b72bae3d2e46f36639e178ff41a454c"
