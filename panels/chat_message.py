"""A chat message widget: one turn of the conversation; the assistant's grows while it streams."""
from __future__ import annotations

from textual.widgets import Static


class ChatMessage(Static):
    """One turn; the assistant's grows while it streams."""

    def __init__(self, role: str, text: str = "", *, note: str = "", cached: bool = False) -> None:
        self.role = role
        self.text = text
        self.note = note
        self.cached = cached  # answered by the semantic cache, not generated
        classes = f"chat-message role-{role}" + (" cached" if cached else "")
        super().__init__(self._render_text(), classes=classes, markup=False)

    def _render_text(self) -> str:
        head = {"user": "you", "assistant": "model", "system": "system"}.get(self.role, self.role)
        tail = f"\n  ({self.note})" if self.note else ""
        return f"{head} › {self.text}{tail}"

    def append(self, delta: str) -> None:
        self.text += delta
        self.update(self._render_text())

    def set_note(self, note: str) -> None:
        self.note = note
        self.update(self._render_text())
