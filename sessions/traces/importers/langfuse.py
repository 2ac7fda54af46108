"""Langfuse trace exports (GET /api/public/traces/{id}, or {"trace", "observations"}): observations of
type GENERATION, SPAN, EVENT, TOOL, AGENT ..., retyped by their OTel attributes; ISO times, TTFT from completionStartTime."""
from __future__ import annotations

from typing import Any

from sessions.traces import fastjson
from sessions.traces.importers import semconv
from sessions.traces.importers.common import as_list, maybe_json, need, parse_time_ns, result_text
from sessions.traces.importers.spans import chat_messages, order_spans, output_messages
from sessions.traces.model import INPUT_TOKENS, OPERATION, OUTPUT_TOKENS, REQUEST_MODEL, TOOL_NAME, Span, Trace

NAME = "langfuse"
_KIND = {"GENERATION": "llm", "TOOL": "tool", "AGENT": "agent", "RETRIEVER": "retrieval", "CHAIN": "agent",
         "SPAN": "other", "EVENT": "other", "EMBEDDING": "other", "EVALUATOR": "other", "GUARDRAIL": "other"}
_OP = {"llm": "chat", "tool": "execute_tool", "agent": "invoke_agent"}


def _traces(doc: Any) -> list | None:
    if isinstance(doc, dict) and isinstance(doc.get("data"), list):
        doc = doc["data"]
    if isinstance(doc, dict):
        doc = [doc]
    if isinstance(doc, list) and doc and all(isinstance(t, dict) and isinstance(t.get("observations"), list) for t in doc[:5]):
        return doc
    return None


def detect(doc: Any) -> bool:
    ts = _traces(doc)
    if not ts:
        return False
    obs = [o for t in ts[:3] for o in t["observations"][:5]]
    return all(isinstance(o, dict) and o.get("type") in _KIND for o in obs)


def parse(doc: Any) -> list[Trace]:
    base = "$.data" if isinstance(doc, dict) and "data" in doc else ("$" if isinstance(doc, list) else "")
    out = []
    for i, tr in enumerate(_traces(doc) or []):
        w = f"{base}[{i}]" if base else "$"
        # {"trace": {...}, "observations": [...]} keeps the trace's own fields one level down
        head = tr["trace"] if isinstance(tr.get("trace"), dict) else tr
        tid = head.get("id", i)
        t = Trace("", NAME, str(head.get("name") or tid or "trace"), source_key=str(tid),
                  attributes={"langfuse.trace.id": tid})
        spans = [_span(o, f"{w}.observations[{j}]") for j, o in enumerate(as_list(tr["observations"], f"{w}.observations"))]
        t.spans = order_spans(spans)
        out.append(t)
    return out


def _otel_attributes(o: dict) -> dict[str, Any]:
    """The OTel span attributes Langfuse keeps in an observation's metadata (a dict or its JSON)."""
    md = o.get("metadata")
    if isinstance(md, str) and md[:1] == "{":
        try:
            md = fastjson.loads(md)
        except ValueError:
            return {}
    if not isinstance(md, dict):
        return {}
    a = md.get("attributes")
    return dict(a) if isinstance(a, dict) else {}


def _span(o: Any, w: str) -> Span:
    typ = need(o, "type", w, str)
    name = str(o.get("name") or typ.lower())
    otel = _otel_attributes(o)
    kind = semconv.kind_of(otel, name, _KIND.get(typ, "other"))
    inp, outp = maybe_json(o.get("input")), maybe_json(o.get("output"))
    if kind == "other" and _is_tool_message(outp):
        kind = "tool"  # LangChain tool runs land as plain SPANs whose output is a ToolMessage
    attrs: dict[str, Any] = otel
    attrs["langfuse.observation.type"] = typ
    if kind in _OP:
        attrs.setdefault(OPERATION, _OP[kind])
    start = parse_time_ns(o.get("startTime"), f"{w}.startTime")
    end = parse_time_ns(o.get("endTime"), f"{w}.endTime")
    if typ == "EVENT" and end is None:
        end = start  # an event is a point in time, which Langfuse records as its start
    s = Span(str(need(o, "id", w)), kind, name, o.get("parentObservationId"), start_ns=start, end_ns=end,
             status="error" if o.get("level") == "ERROR" else "ok", attributes=attrs)
    if kind == "llm":
        if o.get("model"):
            attrs[REQUEST_MODEL] = o["model"]
        used_in, used_out = _usage(o)
        if used_in is not None:
            attrs[INPUT_TOKENS] = used_in
        if used_out is not None:
            attrs[OUTPUT_TOKENS] = used_out
        s.first_token_ns = parse_time_ns(o.get("completionStartTime"), f"{w}.completionStartTime")
        s.input_messages = chat_messages(inp, f"{w}.input")
        s.output_messages = output_messages(outp, f"{w}.output")
        if isinstance(o.get("toolDefinitions"), (list, dict)) and o["toolDefinitions"]:
            defs = o["toolDefinitions"]
            attrs.setdefault(semconv.TOOL_DEFINITIONS, list(defs.values()) if isinstance(defs, dict) else defs)
        semconv.fill_llm(s)
    elif kind == "tool":
        s.tool_call = semconv.tool_call(s)
        if s.tool_call.arguments is None:
            s.tool_call.arguments = inp
        if s.tool_call.result is None:
            s.tool_call.result = _tool_result(outp)
        attrs[TOOL_NAME] = s.tool_call.name
    if o.get("statusMessage"):
        attrs["error.message" if s.status == "error" else "langfuse.status_message"] = o["statusMessage"]
    return s


def _is_tool_message(v: Any) -> bool:
    """A LangChain ToolMessage, as Python (`type: tool`) or JS (`lc` constructor) serializes it."""
    if not isinstance(v, dict):
        return False
    if v.get("lc") and isinstance(v.get("kwargs"), dict):
        return (v.get("id") or [""])[-1] == "ToolMessage"
    return v.get("type") == "tool" and "content" in v


def _tool_result(v: Any) -> str | None:
    if _is_tool_message(v):
        return result_text((v.get("kwargs") or v).get("content"))
    return result_text(v)


def _usage(o: dict) -> tuple[int | None, int | None]:
    for key, i, j in (("usageDetails", "input", "output"), ("usage", "input", "output"), ("usage", "promptTokens", "completionTokens")):
        u = o.get(key)
        if isinstance(u, dict) and (u.get(i) is not None or u.get(j) is not None):
            return u.get(i), u.get(j)
    return o.get("promptTokens"), o.get("completionTokens")
