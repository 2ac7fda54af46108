"""Replay a trace against the engine: every LLM call is sent again with the messages the agent had
at that point (tool results come from the trace, never re-executed) and recorded as a replay session."""
from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from engine.types import EngineError, SamplingParams
from sessions.recorder import Recorder
from sessions.store import Store
from sessions.traces.model import OUTPUT_TOKENS, Message, Span, Trace

DEFAULT_MAX_TOKENS = 128  # when the trace does not say how long the original answer was


@dataclass(slots=True)
class ReplayStep:
    step: int
    span_id: str
    request_id: str | None
    original_ttft_ms: float | None
    original_e2e_ms: float | None
    replayed_ttft_ms: float | None
    replayed_e2e_ms: float | None
    prompt_tokens: int | None
    output_tokens: int | None
    original_output_tokens: int | None
    finish_reason: str | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class ReplayResult:
    session_id: str
    trace_id: str
    model: str
    backend: str
    steps: list[ReplayStep] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # llm spans whose input the format did not keep
    stopped: bool = False  # `stop` was set before every call had run; the steps so far are kept

    def to_dict(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "trace_id": self.trace_id, "model": self.model, "backend": self.backend,
                "steps": [s.to_dict() for s in self.steps], "skipped_span_ids": self.skipped,
                "stopped": self.stopped}


def engine_messages(messages: list[Message]) -> list[dict[str, str]]:
    """Chat messages any chat template accepts: small local models' templates know system, user
    and assistant only, so tool calls and results travel as text in assistant and user turns."""
    out: list[dict[str, str]] = []
    for m in messages:
        if m.role == "tool":
            role, content = "user", f"[tool result{' ' + m.tool_call_id if m.tool_call_id else ''}]\n{m.content}"
        elif m.role == "assistant" and m.tool_calls:
            calls = "\n".join(f"[tool call] {c.name}({_args(c.arguments)})" for c in m.tool_calls)
            role, content = "assistant", (m.content + "\n" + calls).strip()
        else:
            role, content = (m.role if m.role in ("system", "user", "assistant") else "user"), m.content
        if out and out[-1]["role"] == role and role != "system":
            out[-1]["content"] += "\n\n" + content  # templates expect turns to alternate
        else:
            out.append({"role": role, "content": content})
    if out and out[-1]["role"] == "assistant":
        out.append({"role": "user", "content": "Continue."})  # the model answers a user turn
    return out


def _args(a: Any) -> str:
    return a if isinstance(a, str) else json.dumps(a, ensure_ascii=False, sort_keys=True)


def _original(span: Span) -> tuple[float | None, float | None]:
    ttft = None
    if span.first_token_ns is not None and span.start_ns is not None:
        ttft = (span.first_token_ns - span.start_ns) / 1e6
    d = span.duration
    return ttft, (None if d is None else d / 1e6)


def replay_trace(
    store: Store,
    engine: Any,
    trace: Trace,
    *,
    max_tokens: int | None = None,
    temperature: float = 0.0,
    seed: int | None = 0,
    on_step: Callable[[ReplayStep], None] | None = None,
    recorder: Recorder | None = None,
    stop: threading.Event | None = None,
) -> ReplayResult:
    """Runs the LLM calls one after another, as the agent issued them, so each TTFT is that of an
    unloaded engine and comparable with the original's.

    `recorder`: one already listening to `engine` (the app's); a second listener would write every
    request twice. Its step_session_id is left pointing at the replay session: the caller restores it. `stop`: set from another thread, the call running now is cancelled and no
    further call is sent; what ran is recorded and `result.stopped` is true."""
    llm_spans = sorted((s for s in trace.spans if s.kind == "llm"), key=lambda s: s.seq)
    if not llm_spans:
        raise EngineError(f"trace {trace.trace_id} has no LLM calls to replay")
    own = recorder is None
    if recorder is None:
        recorder = Recorder(store, record_steps=False)
    sid = recorder.new_session("replay", model=engine.model_name, backend=engine.backend_name,
                               title=f"replay of trace {trace.trace_id} ({trace.format})")
    result = ReplayResult(sid, trace.trace_id, engine.model_name, engine.backend_name)
    if own:
        engine.add_listener(recorder.on_event)
    else:  # the engine's steps meanwhile are this replay's (as a bench run's are the run's)
        recorder.step_session_id = sid
    cur = store.cursor()
    try:
        for span in llm_spans:
            if stop is not None and stop.is_set():
                result.stopped = True
                break
            msgs = engine_messages(trace.input_for(span))
            if not msgs:
                result.skipped.append(span.span_id)
                continue
            step = _replay_one(engine, span, msgs, sid, len(result.steps), max_tokens, temperature, seed, stop)
            result.steps.append(step)
            cur.execute("INSERT INTO trace_replays VALUES (?,?,?,?,?)",
                        [sid, trace.trace_id, span.span_id, step.request_id, datetime.now(timezone.utc)])
            if on_step:
                on_step(step)
    finally:
        if own:
            engine.remove_listener(recorder.on_event)
            try:
                recorder.flush()
            finally:
                recorder.close()
        else:
            recorder.flush()
    if stop is not None and stop.is_set():
        cut = bool(result.steps) and result.steps[-1].finish_reason == "cancelled"
        result.stopped = result.stopped or cut or len(result.steps) + len(result.skipped) < len(llm_spans)
    return result


def _replay_one(engine: Any, span: Span, msgs: list[dict[str, str]], sid: str, n: int,
                max_tokens: int | None, temperature: float, seed: int | None,
                stop: threading.Event | None = None) -> ReplayStep:
    original_out = span.attributes.get(OUTPUT_TOKENS)
    want = max_tokens or (int(original_out) if original_out else DEFAULT_MAX_TOKENS)
    params = SamplingParams(max_tokens=max(1, want), temperature=temperature, seed=seed)
    ttft0, e2e0 = _original(span)
    try:
        handle = engine.submit(msgs, params, tags={"session_id": sid, "trace_span_id": span.span_id})
    except EngineError as e:  # e.g. the conversation no longer fits the context window
        return ReplayStep(n, span.span_id, None, ttft0, e2e0, None, None, None, None, original_out, "error", str(e))
    if stop is None:
        r = handle.result()
    else:  # poll, so a stop set meanwhile cancels the call in flight
        while True:
            try:
                r = handle.result(timeout=0.05)
                break
            except TimeoutError:
                if stop.is_set():
                    handle.cancel()
    m = r.metrics
    return ReplayStep(n, span.span_id, r.request_id, ttft0, e2e0,
                      m.ttft_ms, m.e2el_ms, m.prompt_tokens, m.output_tokens, original_out, r.finish_reason, r.error)
