"""LangSmith runs (id, trace_id, parent_run_id, run_type, start_time, end_time, inputs, outputs, error,
events) as a JSON array, {"runs": [...]}, JSONL, or the SDK's batch payload {"post": [...], "patch": [...]}."""
from __future__ import annotations

from typing import Any

from sessions.traces.importers.common import need, parse_time_ns, result_text
from sessions.traces.importers.spans import chat_messages, order_spans, output_messages
from sessions.traces.model import INPUT_TOKENS, OPERATION, OUTPUT_TOKENS, REQUEST_MODEL, TOOL_NAME, Span, ToolCall, Trace

NAME = "langsmith"
_KIND = {"llm": "llm", "chat_model": "llm", "tool": "tool", "retriever": "retrieval", "chain": "agent"}
_OP = {"llm": "chat", "tool": "execute_tool", "agent": "invoke_agent"}


def _runs(doc: Any) -> list | None:
    if isinstance(doc, dict) and isinstance(doc.get("runs"), list):
        doc = doc["runs"]
    elif isinstance(doc, dict) and isinstance(doc.get("post"), list) and set(doc) <= {"post", "patch"}:
        doc = _merge_batch(doc["post"], doc.get("patch") or [])
    if isinstance(doc, list) and doc and all(isinstance(r, dict) and "run_type" in r and "id" in r for r in doc[:5]):
        return doc
    return None


def _merge_batch(post: list, patch: list) -> list:
    """The SDK posts a run when it starts and patches it when it ends (end_time, outputs, error):
    a run is its post with its patch laid over it. A patch without a post is a run of its own."""
    runs: dict[Any, dict] = {}
    for r in post:
        if isinstance(r, dict):
            runs[_run_key(r)] = dict(r)
    for r in patch:
        if isinstance(r, dict):
            base = runs.setdefault(_run_key(r), {})
            base.update({k: v for k, v in r.items() if v is not None or k not in base})
            base.setdefault("id", _run_key(r))
    for r in runs.values():
        r.setdefault("run_type", "chain")
    return list(runs.values())


def _run_key(r: dict) -> Any:
    """The JS SDK's patches carry no id, only the dotted order, which ends with the run's id."""
    return r.get("id") or str(r.get("dotted_order") or "")[-36:] or None


def detect(doc: Any) -> bool:
    return _runs(doc) is not None


def parse(doc: Any) -> list[Trace]:
    base = "$.runs" if isinstance(doc, dict) and "runs" in doc else ("$.post" if isinstance(doc, dict) else "$")
    groups: dict[str, list[Span]] = {}
    names: dict[str, str] = {}
    for i, r in enumerate(_runs(doc) or []):
        w = f"{base}[{i}]"
        s = _span(r, w)
        tid = str(r.get("trace_id") or (str(r.get("dotted_order", "")).split(".")[0][-36:] or r["id"]))
        groups.setdefault(tid, []).append(s)
        if not r.get("parent_run_id"):
            names[tid] = s.name
    traces = []
    for tid, spans in groups.items():
        t = Trace("", NAME, names.get(tid, tid), source_key=tid, attributes={"langsmith.trace_id": tid})
        t.spans = order_spans(spans)
        traces.append(t)
    return traces


def _span(r: dict, w: str) -> Span:
    run_type = need(r, "run_type", w, str)
    kind = _KIND.get(run_type, "other")
    if kind == "agent" and r.get("parent_run_id"):
        kind = "other"  # only the root chain is the agent; inner chains are plumbing
    name = str(r.get("name") or run_type)
    attrs: dict[str, Any] = {"langsmith.run_type": run_type}
    if kind in _OP:
        attrs[OPERATION] = _OP[kind]
    error = r.get("error")
    s = Span(str(r["id"]), kind, name, str(r["parent_run_id"]) if r.get("parent_run_id") else None,
             start_ns=parse_time_ns(r.get("start_time"), f"{w}.start_time"),
             end_ns=parse_time_ns(r.get("end_time"), f"{w}.end_time"),
             status="error" if error or r.get("status") == "error" else "ok", attributes=attrs)
    if error:
        attrs["error.message"] = str(error)[:2000]
    if kind == "llm":
        meta = ((r.get("extra") or {}).get("metadata") or {}) if isinstance(r.get("extra"), dict) else {}
        model = meta.get("ls_model_name") or ((r.get("extra") or {}).get("invocation_params") or {}).get("model")
        if model:
            attrs[REQUEST_MODEL] = model
        inp, out = _usage(r)
        if inp is not None:
            attrs[INPUT_TOKENS] = inp
        if out is not None:
            attrs[OUTPUT_TOKENS] = out
        s.first_token_ns = _first_token(r, w)
        s.input_messages = chat_messages(r.get("inputs"), f"{w}.inputs")
        s.output_messages = output_messages(r.get("outputs"), f"{w}.outputs")
    elif kind == "tool":
        attrs[TOOL_NAME] = name
        outputs = r.get("outputs")
        if isinstance(outputs, dict) and set(outputs) == {"output"}:
            outputs = outputs["output"]
        s.tool_call = ToolCall(None, name, r.get("inputs"), result_text(outputs))
    return s


def _usage(r: dict) -> tuple[int | None, int | None]:
    """Token counts on the run, or in the outputs the wrapped client returned (OpenAI's `usage`,
    LangChain's `usage_metadata`)."""
    if r.get("prompt_tokens") is not None or r.get("completion_tokens") is not None:
        return r.get("prompt_tokens"), r.get("completion_tokens")
    out = r.get("outputs") if isinstance(r.get("outputs"), dict) else {}
    for key, i, o in (("usage_metadata", "input_tokens", "output_tokens"), ("usage", "prompt_tokens", "completion_tokens"),
                      ("usage", "input_tokens", "output_tokens")):
        u = out.get(key)
        if isinstance(u, dict) and (u.get(i) is not None or u.get(o) is not None):
            return u.get(i), u.get(o)
    return None, None


def _first_token(r: dict, w: str) -> int | None:
    if r.get("first_token_time"):
        return parse_time_ns(r["first_token_time"], f"{w}.first_token_time")
    for j, ev in enumerate(r.get("events") or []):  # streamed runs log each token as an event
        if isinstance(ev, dict) and ev.get("name") == "new_token":
            return parse_time_ns(ev.get("time"), f"{w}.events[{j}].time")
    return None
