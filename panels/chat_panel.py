"""The chat panel: the conversation, the reply streaming in, and the prompt box."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Input

from panels.chat_message import ChatMessage
from panels.messages import PromptSubmitted


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

    def focus(self, scroll_visible: bool = True) -> ChatPanel:
        """The panel itself takes no focus: its prompt box does."""
        self.query_one("#prompt", Input).focus(scroll_visible)
        return self

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
