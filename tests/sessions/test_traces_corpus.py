"""Every real file in tests/fixtures/traces imports with the counts the file itself holds: LLM calls,
tool calls, tokens and durations are worked out here from the raw JSON, a few lines per format."""
import base64
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sessions.traces.findings import detect
from sessions.traces.importers import parse_file

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "traces"
FILES = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file() and p.suffix != ".md")


def raw(rel):
    text = (CORPUS / rel).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def iso(s):
    """ISO time -> unix seconds (naive = UTC)."""
    dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def counts(llm=0, tools=0, tin=0, tout=0, durations=None, names=None, traces=1):
    return {"traces": traces, "llm": llm, "tools": tools, "in": tin, "out": tout, "durations": durations, "names": names}


# ---- what each format's file says, read without the importers ----

def swe_agent(d):
    hist = d.get("history", [])
    acts = [m for m in hist if m["role"] == "assistant" and m.get("message_type", "action") == "action"]
    steps = d.get("trajectory")
    names = []
    for k in range(len(steps) if steps is not None else len(acts)):
        calls = acts[k].get("tool_calls") if k < len(acts) else None
        if calls:
            names += [c["function"]["name"] for c in calls]
        elif steps is not None and steps[k]["action"].strip():
            names.append(steps[k]["action"].split()[0])
    return counts(len(steps) if steps is not None else len(acts), len(names), names=names)


def chat_log(d):
    msgs = d["messages"] if isinstance(d, dict) else d
    said = [m for m in msgs if m["role"] == "assistant"]
    return counts(len(said), sum(len(m.get("tool_calls") or []) for m in said))


def tau_bench(d):
    said = [m for run in d for m in run["traj"] if m["role"] == "assistant"]
    return counts(len(said), sum(len(m.get("tool_calls") or []) for m in said), traces=len(d))


def openhands_output(d):
    runs = d if isinstance(d, list) else [d]
    out = counts(traces=len(runs), durations=[])
    for run in runs:
        h = run["history"]
        if not any("tool_call_metadata" in e or "source" in e for e in h):  # the resolver's older format
            acts = [e for e in h if "action" in e and e["action"] != "message"]
            out["llm"] += len(run["metrics"]["costs"])
            out["tools"] += len(acts)
            out["durations"] = None
            continue
        responses = {}
        for e in h:
            meta = e.get("tool_call_metadata")
            if meta and "action" in e:
                responses[meta["model_response"]["id"]] = meta["model_response"]["usage"]
                out["tools"] += 1
        out["llm"] += len(responses)
        out["in"] += sum(u["prompt_tokens"] for u in responses.values())
        out["out"] += sum(u["completion_tokens"] for u in responses.values())
        stamps = [iso(e["timestamp"]) for e in h if e.get("timestamp")]
        out["durations"].append((max(stamps) - min(stamps)) * 1000)
    return out


def openhands_v1(events):
    totals = [(e["value"]["usage_to_metrics"]["default"]["accumulated_token_usage"]["prompt_tokens"],
               e["value"]["usage_to_metrics"]["default"]["accumulated_token_usage"]["completion_tokens"])
              for e in events if e["kind"] == "ConversationStateUpdateEvent" and e["key"] == "stats"]
    steps = sum(1 for a, b in zip([(0, 0)] + totals, totals) if b != a)
    calls = {e["tool_call_id"] for e in events if e["kind"] in ("ActionEvent", "ObservationEvent")}
    stamps = [iso(e["timestamp"]) for e in events]
    return counts(steps, len(calls), totals[-1][0], totals[-1][1], [(max(stamps) - min(stamps)) * 1000])


def litellm(d):
    msg = d["response"]["choices"][0]["message"]
    u = d["response"]["usage"]
    return counts(1, len(msg.get("tool_calls") or []), u["prompt_tokens"], u["completion_tokens"], [d["latency_sec"] * 1000])


_EVENT = re.compile(r"\.(start|finish|success|error)-(\d+)$")


def langfuse(d):
    obs = d["observations"]
    meta = {}
    for o in obs:
        m = o.get("metadata")
        try:
            m = json.loads(m) if isinstance(m, str) else m
        except json.JSONDecodeError:
            m = None  # a seed file keeps Python's repr of the metadata, which is not JSON
        meta[o["id"]] = (m or {}).get("attributes", {}) if isinstance(m, dict) else {}
    parent = {o["id"]: o.get("parentObservationId") for o in obs}
    gens = {o["id"] for o in obs if o["type"] == "GENERATION"}

    def above(i):
        while parent.get(i):
            i = parent[i]
            yield i

    wrappers = {a for g in gens for a in above(g) if a in gens}

    def is_tool(o):
        a, out = meta[o["id"]], o.get("output")
        try:
            out = json.loads(out) if isinstance(out, str) else out
        except json.JSONDecodeError:
            pass  # text that only looks like an object
        tool_message = isinstance(out, dict) and (out.get("type") == "tool" or (out.get("id") or [""])[-1] == "ToolMessage")
        return (o["type"] == "TOOL" or a.get("openinference.span.kind") == "TOOL" or a.get("gen_ai.operation.name") == "execute_tool"
                or (o["type"] == "SPAN" and "gen_ai.tool.name" in a and "openinference.span.kind" not in a)
                or (o["type"] == "SPAN" and not a and tool_message))

    # one call per numbered lifecycle (BeeAI writes start/finish/success spans of one call)
    calls = {_EVENT.sub(r"#\2", o["name"]) if _EVENT.search(o["name"]) else o["id"] for o in obs if o["id"] in gens - wrappers}
    tools = {_EVENT.sub(r"#\2", o["name"]) if _EVENT.search(o["name"]) else o["id"] for o in obs if is_tool(o)}
    inner = [o for o in obs if o["id"] in gens - wrappers]
    tin = sum((o.get("usageDetails") or {}).get("input", 0) for o in inner)
    tout = sum((o.get("usageDetails") or {}).get("output", 0) for o in inner)
    stamps = [iso(o[k]) for o in obs for k in ("startTime", "endTime") if o.get(k)]
    name = (d.get("trace") or d).get("name")
    return counts(len(calls), len(tools), tin, tout, [(max(stamps) - min(stamps)) * 1000], names=[name])


def langsmith(d):
    runs = {r["id"]: dict(r) for r in d["post"]}
    for p in d["patch"]:
        runs[p.get("id") or p["dotted_order"][-36:]].update(p)
    llm = [r for r in runs.values() if r["run_type"] == "llm"]
    usage = [r["outputs"].get("usage_metadata") or {"input_tokens": r["outputs"]["usage"]["prompt_tokens"],
                                                    "output_tokens": r["outputs"]["usage"]["completion_tokens"]} for r in llm]

    def t(v):
        return int(v) / 1000 if str(v).isdigit() else iso(v)

    root = next(r for r in runs.values() if not r.get("parent_run_id"))
    return counts(len(llm), 0, sum(u["input_tokens"] for u in usage), sum(u["output_tokens"] for u in usage),
                  [(t(root["end_time"]) - t(root["start_time"])) * 1000])


def anthropic_exchanges(d):
    tools = tin = tout = 0
    for x in d:
        body = x["response"]["body"]
        if isinstance(body, str):  # a recorded event stream
            events = [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:")]
            blocks = [e["content_block"] for e in events if e["type"] == "content_block_start"]
            tin += next(e["message"]["usage"]["input_tokens"] for e in events if e["type"] == "message_start")
            tout += [e["usage"]["output_tokens"] for e in events if e["type"] == "message_delta"][-1]
        elif body.get("type") == "error":
            continue
        else:
            blocks = body["content"]
            tin += body["usage"]["input_tokens"]
            tout += body["usage"]["output_tokens"]
        tools += sum(1 for b in blocks if b["type"] == "tool_use")
    return counts(len(d), tools, tin, tout)


def otlp(d):
    if "trace_requests" in d:
        bodies = [r["pbreq"]["resourceSpans"] for r in d["trace_requests"]]
    else:
        bodies = [d.get("resourceSpans") or d["batches"]]
    spans = [s for rs in bodies for r in rs for ss in r["scopeSpans"] for s in ss["spans"]]
    by_trace = {}
    for s in spans:
        by_trace.setdefault(s["traceId"], []).append(s)
    tools = sum(1 for s in spans for a in s.get("attributes", [])
                if a["key"] == "gen_ai.operation.name" and a["value"].get("stringValue") == "execute_tool")
    durations = [(max(int(s["endTimeUnixNano"]) for s in g) - min(int(s["startTimeUnixNano"]) for s in g)) / 1e6
                 for g in by_trace.values()]
    return counts(0, tools, durations=durations, traces=len(by_trace))


def jaeger(d):
    out = counts(traces=len(d["data"]), durations=[])
    for t in d["data"]:
        unique = {json.dumps(s, sort_keys=True): s for s in t["spans"]}.values()  # Jaeger may answer a span twice
        out["durations"].append((max(s["startTime"] + s["duration"] for s in unique) - min(s["startTime"] for s in unique)) / 1000)
    return out


def expected(rel):
    d = raw(rel)
    fmt = rel.split("/")[0]
    if fmt == "openhands" and rel.endswith("fncall-llm-message.json"):
        return "openai", chat_log(d)
    return {
        "swe-agent": ("swe-agent", swe_agent), "mini-swe-agent": ("openai", chat_log), "tau-bench": ("tau-bench", tau_bench),
        "openhands": ("openhands", openhands_output), "openhands-v1": ("openhands-v1", openhands_v1),
        "litellm": ("litellm", litellm), "langfuse": ("langfuse", langfuse), "langsmith": ("langsmith", langsmith),
        "anthropic": ("anthropic", anthropic_exchanges), "otlp": ("otlp", otlp), "jaeger": ("jaeger", jaeger),
    }[fmt][0], {
        "swe-agent": swe_agent, "mini-swe-agent": chat_log, "tau-bench": tau_bench, "openhands": openhands_output,
        "openhands-v1": openhands_v1, "litellm": litellm, "langfuse": langfuse, "langsmith": langsmith,
        "anthropic": anthropic_exchanges, "otlp": otlp, "jaeger": jaeger,
    }[fmt](d)


def got(pf):
    traces = pf.traces
    llm = [s for t in traces for s in t.spans if s.kind == "llm"]
    tools = [s for t in traces for s in t.spans if s.kind == "tool"]
    durations = []
    for t in traces:
        starts = [s.start_ns for s in t.spans if s.start_ns is not None]
        ends = [s.end_ns for s in t.spans if s.end_ns is not None]
        if starts and ends:
            durations.append((max(ends) - min(starts)) / 1e6)
    return {"traces": len(traces), "llm": len(llm), "tools": len(tools),
            "in": sum(s.attributes.get("gen_ai.usage.input_tokens") or 0 for s in llm),
            "out": sum(s.attributes.get("gen_ai.usage.output_tokens") or 0 for s in llm),
            "durations": durations, "names": [s.tool_name for s in tools], "trace_names": [t.name for t in traces]}


def test_the_corpus_has_every_format_and_variant():
    assert len(FILES) >= 40
    dirs = {f.split("/")[0] for f in FILES}
    assert dirs == {"swe-agent", "mini-swe-agent", "tau-bench", "openhands", "openhands-v1", "litellm", "langfuse",
                    "langsmith", "anthropic", "otlp", "jaeger"}
    sources = (CORPUS / "SOURCES.md").read_text()
    for f in FILES:  # each file is attributed, with a 40-hex commit on its line
        line = next((ln for ln in sources.splitlines() if f"| {f} |" in ln or (f.startswith("langfuse/") and f.endswith(".trace.json")
                                                                               and "langfuse/*.trace.json" in ln)), None)
        assert line is not None, f"{f} missing from SOURCES.md"
        assert re.search(r"\b[0-9a-f]{40}\b", line), f


@pytest.mark.parametrize("rel", FILES)
def test_counts_match_the_file(rel):
    fmt, want = expected(rel)
    pf = parse_file(CORPUS / rel)
    have = got(pf)
    assert pf.format == fmt
    assert have["traces"] == want["traces"]
    assert (have["llm"], have["tools"]) == (want["llm"], want["tools"])
    assert (have["in"], have["out"]) == (want["in"], want["out"])
    if want["durations"] is not None:
        assert sorted(round(x, 1) for x in have["durations"]) == sorted(round(x, 1) for x in want["durations"])
    else:
        assert have["durations"] == []  # none recorded, none invented
    if want["names"] is not None and fmt == "swe-agent":
        assert have["names"] == want["names"]
    if fmt == "langfuse":
        assert have["trace_names"] == want["names"]  # the trace's own name, not "trace"


@pytest.mark.parametrize("rel", FILES)
def test_findings_and_budget_inputs_run_on_every_file(rel):
    from sessions.budget import BudgetConfig, calls_from_trace, segment_messages

    for t in parse_file(CORPUS / rel).traces:
        detect(t)
        for call in calls_from_trace(t):
            segment_messages(call, BudgetConfig())


def test_tempo_exports_keep_their_span_tree():
    """Tempo's trace-by-id answer (`batches`, ids in base64): every id comes out as hex and every
    span keeps the parent the file names."""
    tempo = [f for f in FILES if f.startswith("otlp/") and "batches" in raw(f)]
    assert len(tempo) >= 2
    for rel in tempo:
        spans = [s for b in raw(rel)["batches"] for ss in b["scopeSpans"] for s in ss["spans"]]

        def hexid(v):
            return base64.b64decode(v).hex() if v else None

        (t,) = parse_file(CORPUS / rel).traces
        assert t.source_key == hexid(spans[0]["traceId"])
        assert {s.span_id: s.parent_id for s in t.spans} == {hexid(s["spanId"]): hexid(s.get("parentSpanId")) for s in spans}


def test_swe_agent_tools_are_the_recorded_calls():
    pf = parse_file(CORPUS / "swe-agent/marshmallow-1867-function-calling.traj")
    tools = [s for s in pf.traces[0].spans if s.kind == "tool"]
    bash = [s for s in tools if s.tool_name == "bash"]
    assert bash and bash[0].tool_call.arguments == {"command": "python reproduce.py"}
    assert not {"python", "ls", "pip"} & {s.tool_name for s in tools}


def test_openhands_run_is_timed_end_to_end_with_its_prompt_and_tools():
    t = parse_file(CORPUS / "openhands/multi_swe_bench-output.jsonl").traces[0]
    root = t.spans[0]
    assert root.duration / 1e6 == pytest.approx(88241.15, abs=0.01)  # first event to last, not the tools alone
    llm = [s for s in t.spans if s.kind == "llm"]
    assert all(s.duration for s in llm)  # each call's latency, ending at its action
    assert llm[0].duration / 1e9 == pytest.approx(3.0569519996643066, abs=1e-6)
    assert t.messages[0].role == "system" and t.messages[0].content.startswith("You are OpenHands agent")
    assert len(t.attributes["gen_ai.tool.definitions"]) == 4


def test_nested_llm_layers_count_once():
    # agno: OpenAIChat.invoke wraps the OpenAI SDK's `chat gpt-4o-mini`; only the inner one is the call
    t = parse_file(CORPUS / "langfuse/agno-2025-06-11.trace.json").traces[0]
    llm = [s for s in t.spans if s.kind == "llm"]
    assert [s.name for s in llm] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
    assert {s.name for s in t.spans if s.attributes.get("workbench.llm_layer") == "wrapper"} == {"OpenAIChat.invoke"}
    # koog writes prompts as gen_ai.prompt.N.*: they are read
    k = parse_file(CORPUS / "langfuse/koog-2025-08-26.trace.json").traces[0]
    assert all(s.input_messages for s in k.spans if s.kind == "llm")


def test_list_tool_call_ids_become_strings():
    t = parse_file(CORPUS / "langfuse/microsoft-agent-2025-10-14.seed.json").traces[0]
    tool = next(s for s in t.spans if s.kind == "tool")
    assert tool.tool_call.call_id == "call_Sz1QP8T7fuJkIECGDLFWOorq"
    ids = [tc.call_id for s in t.spans for m in (s.input_messages or []) for tc in m.tool_calls]
    assert ids and all(isinstance(i, str) for i in ids)


def test_recorded_rate_limit_retries_are_retries():
    t = parse_file(CORPUS / "anthropic/parse-retries-d743d628.json").traces[0]
    fs = detect(t)
    assert [(f.kind, f.count) for f in fs] == [("retry", 3)]
    assert "2 failed (rate_limit_error); the last succeeded" in fs[0].detail
