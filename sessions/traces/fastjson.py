"""json.loads and json.dumps for many small values: the stdlib's C scanner and encoder built once,
without the per-call Python wrapping, for importers and the store (tens of thousands per file)."""
from __future__ import annotations

import json
from json.decoder import JSONDecoder
from typing import Any, Callable

try:  # the C parts json itself uses; absent only on Pythons built without the _json module
    from json.encoder import c_make_encoder
    from json.scanner import c_make_scanner
except ImportError:  # pragma: no cover
    c_make_encoder = c_make_scanner = None

_scan = c_make_scanner(JSONDecoder()) if c_make_scanner is not None else None


def loads(text: str) -> Any:
    """json.loads(text) for a str: same values, same errors. json.loads spends ~5 us per call
    around the scanner (two whitespace regex matches and the wrappers) — more than parsing a
    tool call's arguments takes. Anything but a value filling the whole string (surrounding
    whitespace, a BOM, trailing data, nothing at all) goes to json.loads for its usual answer."""
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
