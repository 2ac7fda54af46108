"""The chat panel: the conversation, the reply streaming in, and the prompt box."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Input, Static

from panels.messages import PromptSubmitted


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


class ChatPanel(Widget):
    DEFAULT_CSS = """
    ChatPanel { layout: vertical; }
    ChatPanel #chat-log { height: 1fr; }
    ChatPanel #prompt { dock: bottom; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.streaming: ChatMessage | None = None

    def compose(self) -> ComposeResult:
        yield VerticalScroll(id="chat-log")
        yield Input(placeholder="Ask the model…  (enter to send, esc to stop)", id="prompt")

    @property
    def log(self) -> VerticalScroll:
        return self.query_one("#chat-log", VerticalScroll)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value
        if not text.strip():
            return
        event.input.value = ""
        self.post_message(PromptSubmitted(text))

    def add_message(self, role: str, text: str, note: str = "", cached: bool = False) -> ChatMessage:
        msg = ChatMessage(role, text, note=note, cached=cached)
        self.log.mount(msg)
        self.log.scroll_end(animate=False)
        return msg

    def start_reply(self) -> ChatMessage:
        self.streaming = self.add_message("assistant", "")
        return self.streaming

    def append_reply(self, delta: str) -> None:
        if self.streaming is None:
            self.start_reply()
        assert self.streaming is not None
        self.streaming.append(delta)
        self.log.scroll_end(animate=False)

    def end_reply(self, note: str = "") -> None:
        if self.streaming is not None and note:
            self.streaming.set_note(note)
        self.streaming = None

    def cached_reply(self, text: str, note: str) -> ChatMessage:
        """Fill the pending reply with an answer the semantic cache gave, marked as such."""
        msg = self.streaming or self.start_reply()
        msg.cached = True
        msg.add_class("cached")
        msg.text = text
        msg.set_note(note)
        self.streaming = None
        self.log.scroll_end(animate=False)
        return msg

    def clear(self) -> None:
        self.streaming = None
        self.log.remove_children()

    @property
    def last_reply(self) -> str:
        replies = [m for m in self.log.query(ChatMessage) if m.role == "assistant"]
        return replies[-1].text if replies else ""
