"""The prefix-cache inspector: at admission, which KV blocks of a prompt hit, where the first miss
is, and what broke the match, found against a small LRU of recent prompts' token ids."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(slots=True)
class PrefixInspector:
    block_size: int
    capacity: int = 32  # recent prompts kept to explain a miss
    context: int = 6  # tokens shown each side of the first difference
    decode: Callable[[list[int]], str] | None = None  # token ids -> text; the backend sets it
    recent: OrderedDict[str, list[int]] = field(default_factory=OrderedDict)

    def admit(self, request_id: str, prompt: list[int], hits: list[int]) -> dict[str, Any]:
        """The report for a prompt admitted with these cached blocks; then remember the prompt."""
        report = self.report(request_id, prompt, hits)
        self.recent[request_id] = list(prompt)
        self.recent.move_to_end(request_id)
        while len(self.recent) > self.capacity:
            self.recent.popitem(last=False)
        return report

    def report(self, request_id: str, prompt: list[int], hits: list[int]) -> dict[str, Any]:
        bs = self.block_size
        queried = (len(prompt) - 1) // bs  # the last token is never taken from the cache
        out: dict[str, Any] = {
            "block_size": bs, "prompt_tokens": len(prompt), "blocks_queried": queried, "blocks_hit": len(hits),
            "hit_block_ids": list(hits), "first_miss_block": None, "first_miss_token": None,
            "cause": "all hit", "candidate": None,
        }
        if len(hits) >= queried:
            return out
        out["first_miss_block"] = len(hits)
        out["first_miss_token"] = len(hits) * bs
        best_id, best = self._best_candidate(request_id, prompt)
        if best_id is None:
            out["cause"] = "no earlier prompt shares its first tokens"
            return out
        cand = self.recent[best_id]
        # the earlier prompt held the missing block too: its KV was there once and is gone
        # (reused for other blocks) or not written yet (that request still in prefill)
        out["cause"] = "evicted" if best >= (len(hits) + 1) * bs else "differs"
        lo, hi = max(0, best - self.context), best + self.context
        cached_ids, now_ids = cand[lo:hi], prompt[lo:hi]
        out["candidate"] = {
            "request_id": best_id, "common_prefix_tokens": best, "diff_token": best if best < len(prompt) else None,
            "window_start": lo, "cached_ids": cached_ids, "now_ids": now_ids,
            "cached_text": self.decode(cached_ids) if self.decode else None,
            "now_text": self.decode(now_ids) if self.decode else None,
        }
        return out

    def _best_candidate(self, request_id: str, prompt: list[int]) -> tuple[str | None, int]:
        best_id, best = None, 0
        for rid, cand in self.recent.items():
            if rid != request_id:
                n = common_prefix(cand, prompt, self.block_size)
                if n > best or (n == best and n > 0):  # ties: the most recent prompt
                    best_id, best = rid, n
        return best_id, best


def common_prefix(a: list[int], b: list[int], step: int = 16) -> int:
    """Length of the common prefix: whole slices first (compared in C), then token by token."""
    n = min(len(a), len(b))
    i = 0
    while i + step <= n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


def describe(report: dict[str, Any] | None) -> str:
    """One line for a report, e.g. "12/15 blocks hit; first miss at token 192: cached
    '...09:14...' vs now '...09:15...'"."""
    if not report:
        return "prefix cache: no report"
    head = f"prefix cache: {report['blocks_hit']}/{report['blocks_queried']} blocks hit"
    if report.get("first_miss_token") is None:
        return head
    line = f"{head}; first miss at token {report['first_miss_token']}"
    cand = report.get("candidate")
    if not cand:
        return f"{line} ({report['cause']})"
    if report["cause"] == "evicted":
        line += f" (evicted: request {cand['request_id']} had the same {cand['common_prefix_tokens']} tokens)"
    else:
        line += f": differs from request {cand['request_id']} at token {cand['diff_token']}"
    if cand.get("cached_text") is not None and cand.get("diff_token") is not None:
        line += f": cached {_snip(cand['cached_text'])} vs now {_snip(cand['now_text'])}"
    return line


def _snip(text: str) -> str:
    return repr("..." + text.replace("\n", "\\n") + "...")
