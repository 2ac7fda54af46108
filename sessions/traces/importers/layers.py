"""One span per operation, whatever the instrumentation: nested LLM layers (a framework span around an
SDK span around an HTTP-level one) become one LLM call, and lifecycle-event spans (start/success) one span."""
from __future__ import annotations

import re

from sessions.traces.importers.common import call_id
from sessions.traces.model import INPUT_TOKENS, OUTPUT_TOKENS, REQUEST_MODEL, Span, Trace

LAYER = "workbench.llm_layer"  # "wrapper" on an llm span that only wraps the real call below it
_LIFECYCLE = re.compile(r"^(?P<base>.+)\.(?P<event>start|success|finish|error)-(?P<n>\d+)$")


def normalize(trace: Trace) -> Trace:
    if any(s.kind in ("llm", "tool") and "." in s.name and s.name[-1].isdigit() for s in trace.spans):
        _merge_lifecycle(trace)
    _collapse_llm_layers(trace)
    for s in trace.spans:
        tc = s.tool_call
        if tc is not None and tc.call_id is not None and type(tc.call_id) is not str:
            tc.call_id = call_id(tc.call_id)
    return trace


def _merge_lifecycle(trace: Trace) -> None:
    """BeeAI's emitter writes `backend.openai.chat.start-16`, `...finish-16`, `...success-16` as three
    spans of one call: they become the start span, lasting until the last of them ends."""
    groups: dict[tuple[str, str, str], list[Span]] = {}
    for s in trace.spans:
        m = _LIFECYCLE.match(s.name) if s.kind in ("llm", "tool") else None
        if m:
            groups.setdefault((s.kind, m["base"], m["n"]), []).append(s)
    gone: dict[str, str] = {}
    for (_, base, _), group in groups.items():
        keep = next((s for s in group if _LIFECYCLE.match(s.name)["event"] == "start"), group[0])
        for s in group:
            if s is keep:
                continue
            gone[s.span_id] = keep.span_id
            ends = [e for e in (keep.end_ns, s.end_ns) if e is not None]
            keep.end_ns = max(ends) if ends else None
            if s.status == "error" or _LIFECYCLE.match(s.name)["event"] == "error":
                keep.status = "error"
            if keep.input_messages is None and s.input_messages is not None:
                keep.input_messages = s.input_messages
            if not keep.output_messages and s.output_messages:
                keep.output_messages = s.output_messages
            for k in (INPUT_TOKENS, OUTPUT_TOKENS, REQUEST_MODEL):
                if k not in keep.attributes and k in s.attributes:
                    keep.attributes[k] = s.attributes[k]
            if keep.tool_call is not None and s.tool_call is not None:
                if keep.tool_call.result is None:
                    keep.tool_call.result = s.tool_call.result
                if keep.tool_call.arguments is None:
                    keep.tool_call.arguments = s.tool_call.arguments
        if keep.tool_call is not None and keep.tool_call.name == keep.name:
            keep.tool_call.name = base
        keep.name = base
    if gone:
        trace.spans = [s for s in trace.spans if s.span_id not in gone]
        for s in trace.spans:
            if s.parent_id in gone:
                s.parent_id = gone[s.parent_id]


def _collapse_llm_layers(trace: Trace) -> None:
    """An llm span with llm spans below it wraps them (ADK's call_llm around generate_content around
    openai.chat; agno's OpenAIChat.invoke around `chat gpt-4o-mini`): only the innermost are model
    invocations. A wrapper of exactly one gives it what it lacks (input, output, tokens, model)."""
    llm = {s.span_id: s for s in trace.spans if s.kind == "llm"}
    if len(llm) < 2:
        return
    by_id = {s.span_id: s for s in trace.spans}
    inner_of: dict[str, list[Span]] = {}
    for s in llm.values():
        seen = set()
        p = by_id.get(s.parent_id) if s.parent_id else None
        while p is not None and p.span_id not in seen:
            seen.add(p.span_id)
            if p.kind == "llm":
                inner_of.setdefault(p.span_id, []).append(s)
            p = by_id.get(p.parent_id) if p.parent_id else None
    for wid, below in inner_of.items():
        w = llm[wid]
        innermost = [s for s in below if s.span_id not in inner_of]
        if len(innermost) == 1:
            inner = innermost[0]
            if inner.input_messages is None and inner.input_upto is None:
                inner.input_messages, inner.input_upto = w.input_messages, w.input_upto
            if not inner.output_messages:
                inner.output_messages = w.output_messages
            for k in (REQUEST_MODEL, INPUT_TOKENS, OUTPUT_TOKENS):
                if k not in inner.attributes and k in w.attributes:
                    inner.attributes[k] = w.attributes[k]
            if inner.first_token_ns is None:
                inner.first_token_ns = w.first_token_ns
        w.kind = "other"
        w.attributes[LAYER] = "wrapper"
