"""The inference engine: load a model, submit requests, stream token events with timings.
Headless and importable without torch; backends are loaded on demand."""
import os as _os

# OpenMP runtimes (llama.cpp's and torch's) spin at barriers by default. On a CPU that is
# shared with anything else, a descheduled spinner turned a 40-token prefill from 0.5 s into
# 8 s, and a MiniLM embedding from 13 ms into 115 ms (p90 500 ms). Passive waits cost little
# and never do that. Set before any OpenMP runtime loads; a user's own setting wins
# (export OMP_WAIT_POLICY=ACTIVE on a machine dedicated to the engine).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from engine.engine import Engine, RequestHandle, Stream
from engine.model_source import DEFAULT_MODEL, ModelSpec, resolve_model
from engine.types import (
    BACKENDS,
    SPECULATION_MODES,
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
    TokenLogprob,
    percentile,
)

__all__ = [
    "BACKENDS",
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
    "SPECULATION_MODES",
    "SamplingParams",
    "StepEvent",
    "Stream",
    "TokenEvent",
    "TokenLogprob",
    "percentile",
    "resolve_model",
]
