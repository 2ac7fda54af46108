"""The inference engine: load a model, submit requests, stream token events with timings.

Headless and importable without torch; backends are loaded on demand."""
from engine.engine import Engine, RequestHandle, Stream
from engine.model_source import DEFAULT_MODEL, ModelSpec, resolve_model
from engine.types import (
    EngineError,
    EngineEvent,
    Request,
    RequestFinished,
    RequestMetrics,
    RequestStarted,
    Result,
    SamplingParams,
    StepEvent,
    TokenEvent,
    percentile,
)

__all__ = [
    "DEFAULT_MODEL",
    "Engine",
    "EngineError",
    "EngineEvent",
    "ModelSpec",
    "Request",
    "RequestFinished",
    "RequestHandle",
    "RequestMetrics",
    "RequestStarted",
    "Result",
    "SamplingParams",
    "StepEvent",
    "Stream",
    "TokenEvent",
    "percentile",
    "resolve_model",
]
