"""Every detector over one trace, in one call: the call patterns (retries, N+1, redundant calls, loops),
write amplification and partial write failure, connections held across LLM calls, and cold starts."""
from __future__ import annotations

from dataclasses import dataclass, field

from sessions.traces.cold_start import ColdStartDetector, ColdStartSettings
from sessions.traces.gcpause import gc_paused
from sessions.traces.held_connection import HeldConnectionDetector, HeldConnectionSettings
from sessions.traces.model import Trace
from sessions.traces.nplus1 import DetectorSettings, Finding
from sessions.traces.nplus1 import detect as detect_calls
from sessions.traces.write_amplification import WriteAmplificationDetector, WriteAmplificationSettings

# every kind a finding can have, in the order they are listed
KINDS = ("retry", "n_plus_one", "loop", "redundant", "write_amplification", "partial_write_failure",
         "held_connection", "cold_start")


@dataclass(slots=True)
class FindingSettings:
    calls: DetectorSettings = field(default_factory=DetectorSettings)
    write_amplification: WriteAmplificationSettings = field(default_factory=WriteAmplificationSettings)
    held_connection: HeldConnectionSettings = field(default_factory=HeldConnectionSettings)
    cold_start: ColdStartSettings = field(default_factory=ColdStartSettings)


def detect(trace: Trace, settings: FindingSettings | None = None) -> list[Finding]:
    s = settings or FindingSettings()
    with gc_paused():
        found = detect_calls(trace, s.calls)
        found += WriteAmplificationDetector(s.write_amplification).detect(trace)
        found += HeldConnectionDetector(s.held_connection).detect(trace)
        found += ColdStartDetector(s.cold_start).detect(trace)
    order = {k: n for n, k in enumerate(KINDS)}
    return sorted(found, key=lambda f: order.get(f.kind, len(order)))
