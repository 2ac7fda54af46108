"""Importing many trace files at once: directories walked for trace files, each file read and parsed
here while a writer thread stores the previous batch, so parsing and DuckDB's work overlap."""
from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sessions.store import Store
from sessions.traces.importers import ParsedFile, TraceImportError, parse_bytes
from sessions.traces.store import StoredFile, save_many

TRACE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".traj")
BATCH_BYTES = 16 * 1024 * 1024  # parsed files held for one transaction (their objects take ~5x this)
BATCH_FILES = 256


@dataclass(slots=True)
class Progress:
    files_total: int
    bytes_total: int
    files_done: int = 0  # parsed (or failed)
    bytes_done: int = 0
    files_stored: int = 0
    bytes_stored: int = 0  # of files whose outcome is known
    storing_bytes: int = 0  # the batch being written, and how far its rows are
    storing_fraction: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def fraction(self) -> float:
        """Reading and parsing is half the work, storing the other half: a single large file
        moves the bar as its rows go in, not only when it is done."""
        if not self.bytes_total:
            return 1.0 if self.files_done == self.files_total else 0.0
        stored = self.bytes_stored + self.storing_bytes * self.storing_fraction
        return min(1.0, 0.5 * self.bytes_done / self.bytes_total + 0.5 * stored / self.bytes_total)


@dataclass(slots=True)
class FileResult:
    path: str
    index: int  # position in the expanded list: results arrive in completion order
    stored: StoredFile | None = None
    error: TraceImportError | None = None
    size: int = 0


def expand(paths: list[str]) -> tuple[list[str], list[str]]:
    """Files as given, and every trace file under each directory (recursively, by name, hidden
    entries skipped). Returns (files, skipped): files in a directory with other suffixes."""
    files, skipped = [], []
    for p in paths:
        if not os.path.isdir(p):
            files.append(p)
            continue
        for root, dirs, names in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(names):
                if name.startswith("."):
                    continue
                full = os.path.join(root, name)
                (files if name.lower().endswith(TRACE_SUFFIXES) else skipped).append(full)
    return files, skipped


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise TraceImportError(path, None, "no such file") from None
    except IsADirectoryError:
        raise TraceImportError(path, None, "is a directory") from None
    except OSError as e:
        raise TraceImportError(path, None, e.strerror or str(e)) from None


def import_files(store: Store, files: list[str], fmt: str | None = None,
                 on_result: Callable[[FileResult], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> list[FileResult]:
    """Every file parsed and stored, each whole or not at all; a file that fails is reported and
    the rest go on. Results come back in input order (and to on_result as each is known)."""
    sizes = []
    for f in files:
        try:
            sizes.append(os.path.getsize(f))
        except OSError:
            sizes.append(0)
    progress = Progress(len(files), sum(sizes))
    results: list[FileResult] = []
    done: queue.SimpleQueue = queue.SimpleQueue()
    batches: queue.Queue = queue.Queue(maxsize=1)  # one batch stored while the next is parsed
    failure: list[BaseException] = []

    def writer() -> None:
        while True:
            item = batches.get()
            if item is None:
                return
            progress.storing_bytes, progress.storing_fraction = sum(size for *_, size in item), 0.0

            def rows(done_rows: int, total_rows: int) -> None:
                progress.storing_fraction = done_rows / total_rows if total_rows else 1.0

            try:
                outs = save_many(store, [pf for _, pf, _ in item], rows)
            except BaseException as e:  # the store itself failed: stop, and let the caller raise
                failure.append(e)
                for idx, pf, size in item:
                    done.put(FileResult(pf.path, idx, error=TraceImportError(pf.path, None, f"not stored: {e}"), size=size))
                return
            progress.storing_bytes = 0
            for (idx, pf, size), out in zip(item, outs):
                if isinstance(out, TraceImportError):
                    done.put(FileResult(pf.path, idx, error=out, size=size))
                else:
                    done.put(FileResult(pf.path, idx, stored=out, size=size))

    def drain(block: bool = False) -> None:
        while True:
            try:
                r = done.get(block=block, timeout=0.2) if block else done.get_nowait()
            except queue.Empty:
                if block and on_progress:  # waiting on the writer: its rows still move the bar
                    on_progress(progress)
                return
            results.append(r)
            progress.bytes_stored += r.size
            if r.stored is not None:
                progress.files_stored += 1
            if on_result:
                on_result(r)
            if on_progress:
                on_progress(progress)
            block = False

    thread = threading.Thread(target=writer, name="trace-import-writer", daemon=True)
    thread.start()
    batch: list[tuple[int, ParsedFile, int]] = []
    held = 0
    try:
        for idx, (path, size) in enumerate(zip(files, sizes)):
            if failure:
                break
            try:
                data = _read(path)
                batch.append((idx, parse_bytes(data, path, fmt), len(data)))
                held += len(data)
            except TraceImportError as e:
                done.put(FileResult(path, idx, error=e, size=size))
            progress.files_done += 1
            progress.bytes_done += size
            if held >= BATCH_BYTES or len(batch) >= BATCH_FILES:
                while not failure:  # hand over, showing results while the writer is busy
                    try:
                        batches.put(batch, timeout=0.2)
                        break
                    except queue.Full:
                        drain()
                batch, held = [], 0
            drain()
            if on_progress:
                on_progress(progress)
        if batch and not failure:
            batches.put(batch)
    finally:
        while thread.is_alive():  # the writer stops after what it was given (or has stopped on a failure)
            try:
                batches.put(None, timeout=0.2)
                break
            except queue.Full:
                drain()
        while thread.is_alive():
            drain(block=True)
        thread.join()
        drain()
    if failure:
        raise failure[0]
    results.sort(key=lambda r: r.index)
    return results
