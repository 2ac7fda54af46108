"""Langfuse trace exports (GET /api/public/traces/{id}): a trace with `observations` of type
GENERATION, SPAN, EVENT, TOOL, AGENT, RETRIEVER ...; times are ISO, completionStartTime gives TTFT."""
from __future__ import annotations

from typing import Any

from sessions.traces.importers.common import as_list, need, parse_time_ns, result_text
from sessions.traces.importers.spans import chat_messages, order_spans, output_messages
from sessions.traces.model import (
    INPUT_TOKENS,
    OPERATION,
    OUTPUT_TOKENS,
    REQUEST_MODEL,
    TOOL_NAME,
    Span,
    ToolCall,
    Trace,
)

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
        t = Trace("", NAME, str(tr.get("name") or tr.get("id") or "trace"), source_key=str(tr.get("id", i)),
                  attributes={"langfuse.trace.id": tr.get("id")})
        spans = [_span(o, f"{w}.observations[{j}]") for j, o in enumerate(as_list(tr["observations"], f"{w}.observations"))]
        t.spans = order_spans(spans)
        out.append(t)
    return out


def _span(o: Any, w: str) -> Span:
    typ = need(o, "type", w, str)
    kind = _KIND.get(typ, "other")
    name = str(o.get("name") or typ.lower())
    attrs: dict[str, Any] = {"langfuse.observation.type": typ}
    if kind in _OP:
        attrs[OPERATION] = _OP[kind]
    start = parse_time_ns(o.get("startTime"), f"{w}.startTime")
    end = parse_time_ns(o.get("endTime"), f"{w}.endTime")
    if typ == "EVENT" and end is None:
        end = start  # an event is a point in time, which Langfuse records as its start
    s = Span(str(need(o, "id", w)), kind, name, o.get("parentObservationId"), start_ns=start, end_ns=end,
             status="error" if o.get("level") == "ERROR" else "ok", attributes=attrs)
    if kind == "llm":
        if o.get("model"):
            attrs[REQUEST_MODEL] = o["model"]
        inp, outp = _usage(o)
        if inp is not None:
            attrs[INPUT_TOKENS] = inp
        if outp is not None:
            attrs[OUTPUT_TOKENS] = outp
        s.first_token_ns = parse_time_ns(o.get("completionStartTime"), f"{w}.completionStartTime")
        s.input_messages = chat_messages(o.get("input"), f"{w}.input")
        s.output_messages = output_messages(o.get("output"), f"{w}.output")
    elif kind == "tool":
        attrs[TOOL_NAME] = name
        s.tool_call = ToolCall(None, name, o.get("input"), result_text(o.get("output")))
    if o.get("statusMessage"):
        attrs["error.message" if s.status == "error" else "langfuse.status_message"] = o["statusMessage"]
    return s


def _usage(o: dict) -> tuple[int | None, int | None]:
    for key, i, j in (("usageDetails", "input", "output"), ("usage", "input", "output"), ("usage", "promptTokens", "completionTokens")):
        u = o.get(key)
        if isinstance(u, dict) and (u.get(i) is not None or u.get(j) is not None):
            return u.get(i), u.get(j)
    return o.get("promptTokens"), o.get("completionTokens")
