"""json.loads and json.dumps for trace files and their many small values: orjson when it is
installed, else the stdlib's C scanner and encoder built once; the stdlib always has the last word."""
from __future__ import annotations

import json
from json.decoder import JSONDecoder
from typing import Any, Callable

try:  # the C parts json itself uses; absent only on Pythons built without the _json module
    from json.encoder import c_make_encoder
    from json.scanner import c_make_scanner
except ImportError:  # pragma: no cover
    c_make_encoder = c_make_scanner = None

try:  # 3-5x the stdlib's speed on whole documents; optional, the results are the same
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    orjson = None

_scan = c_make_scanner(JSONDecoder()) if c_make_scanner is not None else None
FAILED = object()  # what parse_document returns when the stdlib has to decide


def parse_document(data: bytes) -> Any:
    """A whole file's JSON value, or FAILED when orjson is absent or refuses it: JSONL, a BOM,
    NaN, integers beyond 64 bits, bad UTF-8 or bad JSON. The caller then asks the stdlib, which
    accepts what json accepts and reports errors with the line and column people expect."""
    if orjson is None:
        return FAILED
    try:
        return orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError):
        return FAILED


def loads(text: str) -> Any:
    """json.loads(text) for a str: same values, same errors. json.loads spends ~5 us per call
    around the scanner (two whitespace regex matches and the wrappers) — more than parsing a
    tool call's arguments takes. Anything but a value filling the whole string (surrounding
    whitespace, a BOM, trailing data, nothing at all) goes to json.loads for its usual answer."""
    if orjson is not None and type(text) is str:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass  # NaN, huge integers, or an error: the stdlib's answer below
    if _scan is not None and type(text) is str:
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            return json.loads(text)
        if end == len(text):
            return value
    return json.loads(text)


def make_encoder(*, sort_keys: bool = False, compact: bool = False) -> Callable[[Any], str]:
    """What json.dumps(v, ensure_ascii=False, default=str, sort_keys=..., separators=...) returns,
    without building a JSONEncoder and its C encoder again on every call. No circular-reference
    check: every value here came out of json.loads or an importer, which make no cycles."""
    item_sep, key_sep = (",", ":") if compact else (", ", ": ")
    if c_make_encoder is None:  # pragma: no cover
        return json.JSONEncoder(ensure_ascii=False, default=str, sort_keys=sort_keys,
                                separators=(item_sep, key_sep)).encode
    enc = c_make_encoder(None, str, json.encoder.encode_basestring, None, key_sep, item_sep, sort_keys, False, True)
    join = "".join

    def encode(value: Any) -> str:
        return join(enc(value, 0))

    return encode


def make_store_encoder() -> Callable[[Any], str]:
    """JSON text for the store's JSON columns, where only the value matters, not the spacing:
    orjson's compact text when it can write the value (it refuses non-string keys and integers
    beyond 64 bits, and writes NaN as null), else the stdlib's."""
    fallback = make_encoder()
    if orjson is None:
        return fallback
    dumps, options = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY

    def encode(value: Any) -> str:
        try:
            return dumps(value, default=str, option=options).decode()
        except TypeError:
            return fallback(value)

    return encode
