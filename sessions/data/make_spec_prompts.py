"""Builds sessions/data/public/spec_prompts.jsonl: prompts nobody tuned the speculation policy on.

Two workloads from public data, each split once (SPLIT_SEED) into a tuning half and a report half:
- code-fix: DebugBench (thunlp/DebugBench, Apache-2.0) Python buggy solutions; the prompt asks for
  the whole fixed code, so a good answer copies most of the prompt (the prompt-lookup case);
- chat: MT-Bench first turns (lm-sys/FastChat, Apache-2.0) from the open-ended categories, where
  the answer copies nothing (the case speculation must not pay for).

Policy constants are tuned on `split == "tune"` only; figures are reported on `split == "report"`.
Records are kept whole. Run against local clones of the two repositories:

    python sessions/data/make_spec_prompts.py --debugbench PATH --fastchat PATH
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
from pathlib import Path

SPLIT_SEED = 20240615
OUT = Path(__file__).parent / "public" / "spec_prompts.jsonl"

DEBUGBENCH_FILES = [  # one file per bug kind; python3 only (the embedded model writes Python best)
    "benchmark/python3_condition error.json", "benchmark/python3_faulty indexing.json",
    "benchmark/python3_illegal keywords.json", "benchmark/python3_misused == or =.json",
    "benchmark/python3_operation error.json", "benchmark/python3_other error.json",
    "benchmark/python3_undefined methods.json", "benchmark/python3_variable error.json",
]
CODE_CHARS = (200, 700)  # buggy code about 60-200 tokens: an answer of 64 tokens is mostly copy
CODE_PER_FILE = 6
MTBENCH_FILE = "fastchat/llm_judge/data/mt_bench/question.jsonl"
CHAT_CATEGORIES = ("writing", "roleplay", "reasoning", "stem", "humanities")  # extraction/coding copy text


def _git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def _show(repo: str, commit: str, path: str) -> str:
    return _git(repo, "show", f"{commit}:{path}")


def code_records(repo: str) -> list[dict]:
    commit = _git(repo, "rev-parse", "HEAD").strip()
    rng = random.Random(SPLIT_SEED)
    out, seen = [], set()
    for path in DEBUGBENCH_FILES:
        recs = [r for r in json.loads(_show(repo, commit, path))
                if CODE_CHARS[0] <= len(r["buggy_code"].strip()) <= CODE_CHARS[1] and r["slug"] not in seen]
        recs.sort(key=lambda r: r["slug"])
        for r in rng.sample(recs, min(CODE_PER_FILE, len(recs))):
            seen.add(r["slug"])
            out.append({"workload": "code-fix", "id": f"debugbench:{Path(path).stem}:{r['slug']}",
                        "source": {"repo": "thunlp/DebugBench", "path": path, "commit": commit,
                                   "license": "Apache-2.0"}, "record": r})
    return out


def chat_records(repo: str) -> list[dict]:
    commit = _git(repo, "rev-parse", "HEAD").strip()
    out = []
    for line in _show(repo, commit, MTBENCH_FILE).splitlines():
        r = json.loads(line)
        if r["category"] in CHAT_CATEGORIES:
            out.append({"workload": "chat", "id": f"mt_bench:{r['question_id']}",
                        "source": {"repo": "lm-sys/FastChat", "path": MTBENCH_FILE, "commit": commit,
                                   "license": "Apache-2.0"}, "record": r})
    return out


def split(records: list[dict]) -> list[dict]:
    """One split per workload, fixed seed: the first half (after a shuffle) tunes, the rest reports."""
    order = sorted(records, key=lambda r: r["id"])
    random.Random(SPLIT_SEED).shuffle(order)
    half = len(order) // 2
    for i, r in enumerate(order):
        r["split"] = "tune" if i < half else "report"
    return order


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--debugbench", required=True, help="a clone of github.com/thunlp/DebugBench")
    ap.add_argument("--fastchat", required=True, help="a clone of github.com/lm-sys/FastChat")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    rows = split(code_records(a.debugbench)) + split(chat_records(a.fastchat))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        counts[r["workload"], r["split"]] = counts.get((r["workload"], r["split"]), 0) + 1
    print(f"wrote {len(rows)} records to {a.out}: " + ", ".join(f"{w}/{s} {n}" for (w, s), n in sorted(counts.items())))


if __name__ == "__main__":
    main()
