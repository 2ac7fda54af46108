"""The DuckDB file every session, request and token event is kept in: opening it (with clear
errors for a busy or newer file), migrations, and one cursor per thread."""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from sessions.errors import SessionsError
from sessions.schema import MIGRATIONS, SCHEMA_VERSION


class StoreError(SessionsError):
    """A database problem the user can act on; shown as one line."""


def default_db_path() -> Path:
    env = os.environ.get("WORKBENCH_DB")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("inference-workbench", appauthor=False)) / "workbench.duckdb"


_LOCK_RE = re.compile(r"Conflicting lock is held in (?P<proc>.+?) \(PID (?P<pid>\d+)\)")


def _explain_open_error(path: Path, err: Exception) -> StoreError:
    msg = str(err)
    m = _LOCK_RE.search(msg)
    if m:
        return StoreError(
            f"database {path} is in use by another process ({m['proc']}, PID {m['pid']}); "
            "close it or pass --db with another file"
        )
    if "lock" in msg.lower():
        return StoreError(f"database {path} is locked by another process; close it or pass --db with another file")
    if "not a valid DuckDB database" in msg or "Invalid Input" in msg or "file is not" in msg.lower():
        return StoreError(f"{path} is not a DuckDB database file")
    first = msg.strip().splitlines()[0] if msg.strip() else type(err).__name__
    return StoreError(f"cannot open database {path}: {first}")


def check_not_locked(path: str | os.PathLike | None = None) -> None:
    """Fail fast, without importing DuckDB, when another process holds the file's write lock
    (DuckDB takes a POSIX record lock; F_GETLK names the holder's PID). Used where the database
    is opened late, after the first token. Silent where the platform cannot tell."""
    p = Path(path).expanduser() if path is not None else default_db_path()
    if str(p) == ":memory:" or not p.is_file():
        return
    try:
        import fcntl
        import struct
    except ImportError:  # pragma: no cover - not POSIX
        return
    try:
        fd = os.open(p, os.O_RDWR)
    except OSError:
        return
    try:
        # struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid
        fmt = "hhqqi"
        req = struct.pack(fmt, fcntl.F_WRLCK, 0, 0, 0, 0)
        res = fcntl.fcntl(fd, fcntl.F_GETLK, req)
        l_type, _, _, _, pid = struct.unpack(fmt, res[: struct.calcsize(fmt)])
    except OSError:
        return
    finally:
        os.close(fd)
    if l_type != fcntl.F_UNLCK:
        raise StoreError(f"database {p} is in use by another process (PID {pid}); close it or pass --db with another file")


class Store:
    """One open DuckDB file. Use `cursor()` from each thread (DuckDB connections are not
    shared across threads; cursors of one connection are)."""

    def __init__(self, path: str | os.PathLike | None = None, *, read_only: bool = False):
        import duckdb

        self.path = Path(path).expanduser() if path is not None else default_db_path()
        if str(self.path) != ":memory:":
            if read_only and not self.path.exists():
                raise StoreError(f"database {self.path} does not exist yet")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as e:
            raise _explain_open_error(self.path, e) from None
        self._local = threading.local()
        self._lock = threading.Lock()
        self.read_only = read_only
        try:
            self._migrate()
        except BaseException:
            self._con.close()
            raise

    # ---- connection per thread ----
    def cursor(self):
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cur = cur
        return cur

    def execute(self, sql: str, params=None):
        return self.cursor().execute(sql, params or [])

    def close(self) -> None:
        try:
            self._con.close()
        except Exception:
            pass

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- schema ----
    def schema_version(self) -> int:
        cur = self._con.cursor()
        has = cur.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
        ).fetchone()[0]
        if not has:
            return 0
        row = cur.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _migrate(self) -> None:
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path} was written by a newer inference-workbench "
                f"(schema {current}; this version knows up to {SCHEMA_VERSION}); upgrade the workbench"
            )
        if current == SCHEMA_VERSION:
            return
        if self.read_only:
            raise StoreError(f"database {self.path} needs an upgrade (schema {current}); open it once read-write")
        cur = self._con.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, description VARCHAR, applied_at TIMESTAMPTZ DEFAULT now())")
        for version, description, sql in MIGRATIONS:
            if version <= current:
                continue
            cur.execute("BEGIN TRANSACTION")
            try:
                cur.execute(sql)
                cur.execute("INSERT INTO schema_version (version, description) VALUES (?, ?)", [version, description])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
