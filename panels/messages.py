"""Messages shared between panels and the app."""
from __future__ import annotations

from typing import Any

from textual.message import Message


class PromptSubmitted(Message):
    """The user sent a chat message."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__()


class SessionSelected(Message):
    """The user picked a stored session to reopen."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__()


class SessionLoaded(Message):
    """A stored session (as returned by sessions.get_session) is ready to show."""

    def __init__(self, session: dict[str, Any]) -> None:
        self.session = session
        super().__init__()


class SessionsListed(Message):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        super().__init__()


class EngineReady(Message):
    def __init__(self, model: str, backend: str, context_window: int) -> None:
        self.model = model
        self.backend = backend
        self.context_window = context_window
        super().__init__()


class CachedReply(Message):
    """The semantic cache answered the user's turn; the engine was not asked."""

    def __init__(self, text: str, similarity: float, entry_id: str, cached_prompt: str) -> None:
        self.text = text
        self.similarity = similarity
        self.entry_id = entry_id
        self.cached_prompt = cached_prompt
        super().__init__()


class TracesListed(Message):
    """Imported traces (rows of sessions.traces.store.list_traces)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        super().__init__()


class TraceSelected(Message):
    """The user picked an imported trace to open in the inspector."""

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        super().__init__()


class TraceLoaded(Message):
    """One trace (sessions.traces.store.get_trace) with its N+1 / redundant / loop findings."""

    def __init__(self, trace: dict[str, Any], findings: list[dict[str, Any]]) -> None:
        self.trace = trace
        self.findings = findings
        super().__init__()


class BudgetComputed(Message):
    """The budget panel's rows (the dicts `workbench budget --json` prints) for a session."""

    def __init__(self, rows: list[dict[str, Any]], session_id: str | None) -> None:
        self.rows = rows
        self.session_id = session_id
        super().__init__()


class SweepLoaded(Message):
    """The latest speculation sweep grid (sessions.spec_sweep.load_sweep rows)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        super().__init__()
