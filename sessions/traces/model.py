"""The normalized agent trace every importer produces: a Trace holds a tree of Spans (llm, tool,
agent, retrieval, other) with OpenTelemetry GenAI attribute names, messages and tool calls."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SPAN_KINDS = ("llm", "tool", "agent", "retrieval", "other")

# OpenTelemetry GenAI semantic-convention attribute names used across importers and the store.
OPERATION = "gen_ai.operation.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_RESULT = "gen_ai.tool.call.result"
SYSTEM = "gen_ai.system"


class TraceFormatError(Exception):
    """A trace file that does not have the shape its format promises. `where` is a line number
    (\"line 12\") or a JSON path (\"$.trajectory[3].action\")."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


@dataclass(slots=True)
class ToolCall:
    call_id: str | None
    name: str
    arguments: Any  # a dict for function calls, a string for shell-style actions
    result: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "name": self.name, "arguments": self.arguments, "result": self.result}


@dataclass(slots=True)
class Message:
    role: str  # system | user | assistant | tool
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # for role "tool": which call this answers
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            d["tool_calls"] = [t.to_dict() for t in self.tool_calls]
        if self.tool_call_id is not None:
            d["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            d["name"] = self.name
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Message":
        calls = [ToolCall(t.get("call_id"), t["name"], t.get("arguments"), t.get("result")) for t in d.get("tool_calls") or []]
        return Message(d["role"], d.get("content") or "", calls, d.get("tool_call_id"), d.get("name"))


@dataclass(slots=True)
class Span:
    span_id: str
    kind: str  # one of SPAN_KINDS
    name: str
    parent_id: str | None = None
    seq: int = 0  # order of issue within the trace; the only order a format without timings has
    start_ns: int | None = None  # unix ns; None when the format records no times
    end_ns: int | None = None
    duration_ns: int | None = None  # known alone in some formats (SWE-agent execution_time)
    first_token_ns: int | None = None  # llm spans whose format records it (Langfuse, LangSmith)
    status: str = "unset"  # ok | error | unset
    attributes: dict[str, Any] = field(default_factory=dict)
    tool_call: ToolCall | None = None
    # llm spans: what the model saw. Either its own messages (span-based formats) or the first
    # `input_upto` messages of the trace's conversation (message-log formats), so a long
    # conversation is stored once rather than once per call.
    input_messages: list[Message] | None = None
    input_upto: int | None = None
    output_messages: list[Message] = field(default_factory=list)

    @property
    def duration(self) -> int | None:
        if self.start_ns is not None and self.end_ns is not None:
            return self.end_ns - self.start_ns
        return self.duration_ns

    @property
    def tool_name(self) -> str | None:
        return self.tool_call.name if self.tool_call else self.attributes.get(TOOL_NAME)


@dataclass(slots=True)
class Trace:
    trace_id: str  # set by the importer driver from the content hash
    format: str
    name: str
    spans: list[Span] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # the conversation, for message-log formats
    attributes: dict[str, Any] = field(default_factory=dict)
    source_key: str = ""  # which trace inside a multi-trace file, part of the id hash

    @property
    def has_timings(self) -> bool:
        return any(s.start_ns is not None or s.duration_ns is not None for s in self.spans)

    def input_for(self, span: Span) -> list[Message]:
        if span.input_messages is not None:
            return span.input_messages
        if span.input_upto is not None:
            return self.messages[: span.input_upto]
        return []
