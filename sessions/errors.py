"""Errors a user can cause in the sessions room; the CLI shows them as one line."""


class SessionsError(Exception):
    """Bad input file, unknown id, busy or newer database, ..."""
