"""Live OpenTelemetry export: a span per engine request (GenAI semantic conventions, the names
`workbench export otlp` writes) sent through the OpenTelemetry SDK to an OTLP/HTTP collector, so
Phoenix, Jaeger or Langfuse show a running `serve` as it answers."""
from __future__ import annotations

import json
import time
from typing import Any

from engine.types import EngineEvent, RequestFinished, RequestStarted
from sessions.otlp_export import (
    FINISH_REASONS,
    OUTPUT_MESSAGES,
    PROVIDER,
    TTFT,
)
from sessions.traces.model import INPUT_TOKENS, OPERATION, OUTPUT_TOKENS, REQUEST_MODEL, RESPONSE_ID, RESPONSE_MODEL


class LiveSpans:
    """Use `on_event` as an engine listener (it only queues: the SDK's batch processor sends from
    its own thread). `close()` sends what is left."""

    def __init__(self, endpoint: str, service: str = "workbench", model: str | None = None,
                 backend: str | None = None):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=10),
                                                            schedule_delay_millis=500))
        self.tracer = self.provider.get_tracer("inference-workbench")
        self.model = model
        self.backend = backend
        self.offset_ns = time.time_ns() - time.perf_counter_ns()  # engine stamps are perf_counter ns
        self._params: dict[str, Any] = {}

    def on_event(self, ev: EngineEvent) -> None:
        if isinstance(ev, RequestStarted):
            self._params[ev.request_id] = ev.params
        elif isinstance(ev, RequestFinished):
            self._span(ev)

    def _span(self, ev: RequestFinished) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        params = self._params.pop(ev.request_id, None)
        r = ev.result
        m = r.metrics
        model = ev.tags.get("model") or self.model or ""
        attrs: dict[str, Any] = {
            OPERATION: "chat", REQUEST_MODEL: model, RESPONSE_MODEL: model, RESPONSE_ID: r.request_id,
            FINISH_REASONS: [r.finish_reason], INPUT_TOKENS: m.prompt_tokens, OUTPUT_TOKENS: m.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": m.cached_prompt_tokens,
            OUTPUT_MESSAGES: json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": r.text}],
                                          "finish_reason": r.finish_reason}], ensure_ascii=False),
        }
        if self.backend:
            attrs[PROVIDER] = self.backend
        if m.ttft_s is not None:
            attrs[TTFT] = m.ttft_s
        if params is not None:
            attrs["gen_ai.request.max_tokens"] = params.max_tokens
            attrs["gen_ai.request.temperature"] = float(params.temperature)
            if params.seed is not None:
                attrs["gen_ai.request.seed"] = params.seed
        if ev.tags.get("session_id"):
            attrs["gen_ai.conversation.id"] = str(ev.tags["session_id"])
        end = (m.finished_ns or time.perf_counter_ns()) + self.offset_ns
        span = self.tracer.start_span(f"chat {model}".strip(), kind=SpanKind.CLIENT, attributes=attrs,
                                      start_time=m.arrival_ns + self.offset_ns)
        if r.finish_reason == "error":
            span.set_status(Status(StatusCode.ERROR, r.error or "generation failed"))
        span.end(end_time=end)

    def close(self) -> None:
        self.provider.shutdown()  # flushes the batch
