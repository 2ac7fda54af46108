"""What is kept and learned from it: the DuckDB store, the recorder, and queries over
sessions, requests and token events. Headless; never imports textual."""
from sessions.errors import SessionsError
from sessions.queries import get_session, list_sessions, resolve_session_id, session_summary
from sessions.recorder import Recorder
from sessions.store import Store, StoreError, default_db_path

__all__ = [
    "Recorder",
    "SessionsError",
    "Store",
    "StoreError",
    "default_db_path",
    "get_session",
    "list_sessions",
    "resolve_session_id",
    "session_summary",
]
