"""Pausing Python's cyclic garbage collector while a trace file is parsed, stored or scanned:
that work builds hundreds of thousands of acyclic objects, and every collection re-walks them."""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """json.loads of a 20 MB trace spent ~40% of its time in collections that freed nothing:
    every 700 new containers start one, and the older generations hold the whole document.
    Reference counting still frees everything as usual; only cycles wait until the end. Nesting
    is fine (the inner one leaves it paused); a thread running meanwhile only runs without
    collections for that while, and concurrent users at worst get them back early."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
