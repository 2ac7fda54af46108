"""Trace importers, one module per format, and the driver that reads a file (JSON or JSONL),
detects its format, parses it into Traces and gives each a content-hash id."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sessions.errors import SessionsError
from sessions.traces import fastjson
from sessions.traces.gcpause import gc_paused
from sessions.traces.importers import (
    anthropic_messages,
    jaeger,
    langfuse,
    langsmith,
    litellm,
    openai_chat,
    openhands,
    openhands_v1,
    otlp,
    swe_agent,
    tau_bench,
)
from sessions.traces.importers.layers import normalize
from sessions.traces.model import Trace, TraceFormatError

# Detection order matters: the most specific shapes first, plain chat messages last.
IMPORTERS = {m.NAME: m for m in (otlp, jaeger, langfuse, swe_agent, tau_bench, langsmith, openhands, openhands_v1, litellm, anthropic_messages,
                                  openai_chat)}
FORMATS = tuple(IMPORTERS)


class TraceImportError(SessionsError):
    """One file could not be imported; names the file, the place in it and the reason."""

    def __init__(self, path: str, where: str | None, reason: str):
        self.path, self.where, self.reason = path, where, reason
        super().__init__(f"{path}: {where}: {reason}" if where else f"{path}: {reason}")


@dataclass(slots=True)
class ParsedFile:
    path: str
    format: str
    content_hash: str
    traces: list[Trace] = field(default_factory=list)
    size: int = 0


class _Jsonl(list):
    """Records of a JSONL file, with the line each came from (for error places)."""

    lines: list[int]


def load_document(data: bytes, path: str) -> Any:
    doc = fastjson.parse_document(data[3:] if data[:3] == b"\xef\xbb\xbf" else data)
    if doc is not fastjson.FAILED:
        return doc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TraceImportError(path, f"byte {e.start}", "not UTF-8 text") from None
    if not text or text.isspace():  # not text.strip(): that copies a 20 MB file to learn it is not empty
        raise TraceImportError(path, None, "empty file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as whole:
        first_err = whole
    # JSONL: one JSON value per line. If the first line does not parse either, the JSON error
    # of the whole file is the better message.
    records = _Jsonl()
    records.lines = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(fastjson.loads(line))
        except json.JSONDecodeError as e:
            if not records:
                raise TraceImportError(path, f"line {first_err.lineno} column {first_err.colno}", f"not valid JSON: {first_err.msg}") from None
            raise TraceImportError(path, f"line {n} column {e.colno}", f"not valid JSON: {e.msg}") from None
        records.lines.append(n)
    return records


def detect_format(doc: Any) -> str | None:
    for name, mod in IMPORTERS.items():
        try:
            if mod.detect(doc):
                return name
        except (AttributeError, TypeError, KeyError, IndexError):
            continue
    return None


def _place(doc: Any, where: str) -> str:
    """`$[12].x` in a JSONL file is `line 14, $.x`: people open the file at a line."""
    if isinstance(doc, _Jsonl) and where.startswith("$["):
        idx, _, rest = where[2:].partition("]")
        if idx.isdigit() and int(idx) < len(doc.lines):
            return f"line {doc.lines[int(idx)]}, ${rest}" if rest else f"line {doc.lines[int(idx)]}"
    return where


def parse_bytes(data: bytes, path: str, fmt: str | None = None, on_stage: Callable[[str], None] | None = None) -> ParsedFile:
    if fmt is not None and fmt not in IMPORTERS:
        raise TraceImportError(path, None, f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    with gc_paused():
        return _parse_bytes(data, path, fmt, on_stage)


def _parse_bytes(data: bytes, path: str, fmt: str | None, on_stage: Callable[[str], None] | None) -> ParsedFile:
    digest = hashlib.sha256(data).hexdigest()
    if on_stage:
        on_stage("parsing")
    doc = load_document(data, path)
    name = fmt or detect_format(doc)
    if name is None:
        raise TraceImportError(path, "$", f"not a trace format this workbench knows: {_describe(doc)}; "
                                          f"known formats: {', '.join(FORMATS)} (use --format to force one)")
    if fmt is not None and not _shape_ok(IMPORTERS[name], doc):
        raise TraceImportError(path, "$", f"does not look like {name}: {_describe(doc)}")
    try:
        traces = IMPORTERS[name].parse(doc)
    except TraceFormatError as e:
        raise TraceImportError(path, _place(doc, e.where), e.reason) from None
    except RecursionError:
        raise TraceImportError(path, "$", "nested too deeply") from None
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as e:
        # a shape the importer's checks did not foresee: still one line, still this file
        raise TraceImportError(path, "$", f"unexpected {name} shape ({type(e).__name__}: {e})") from None
    if not traces:
        raise TraceImportError(path, "$", f"no traces found in this {name} file")
    for t in traces:
        normalize(t)
        seen: set[str] = set()
        for sp in t.spans:
            if sp.span_id in seen:  # the store keys spans by id; two with one id is a broken file
                raise TraceImportError(path, f"trace {t.source_key or t.name}", f"span id {sp.span_id!r} appears twice")
            seen.add(sp.span_id)
        t.format = name
        t.trace_id = hashlib.sha256(f"{name}\0{digest}\0{t.source_key}".encode()).hexdigest()[:16]
    return ParsedFile(path, name, digest, traces, len(data))


def _shape_ok(mod: Any, doc: Any) -> bool:
    try:
        return bool(mod.detect(doc))
    except (AttributeError, TypeError, KeyError, IndexError):
        return False


def _describe(doc: Any) -> str:
    """The shape a person needs to see to tell which format the file is (or was meant to be)."""
    if isinstance(doc, dict):
        keys = list(doc)
        more = f" (+{len(keys) - 8} more)" if len(keys) > 8 else ""
        return "an object with keys " + ", ".join(map(str, keys[:8])) + more if keys else "an empty object"
    if isinstance(doc, list):
        what = "JSONL records" if isinstance(doc, _Jsonl) else "an array"
        first = doc[0] if doc else None
        if isinstance(first, dict):
            return f"{what} of {len(doc)} objects, the first with keys " + ", ".join(map(str, list(first)[:8]))
        return f"{what} of {len(doc)} items" + (f" ({type(first).__name__}s)" if doc else "")
    return f"a JSON {type(doc).__name__}"


def parse_file(path: str | Path, fmt: str | None = None) -> ParsedFile:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise TraceImportError(str(path), None, "no such file") from None
    except IsADirectoryError:
        raise TraceImportError(str(path), None, "is a directory") from None
    except OSError as e:
        raise TraceImportError(str(path), None, e.strerror or str(e)) from None
    return parse_bytes(data, str(path), fmt)
