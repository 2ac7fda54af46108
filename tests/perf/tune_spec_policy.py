"""Acceptance of prompt-lookup drafts by match length on the public prompts' TUNING half (never the
report half): the figures PRIOR_FIRST in engine/torch/spec_policy.py is fitted to. Greedy decoding
with speculation=ngram (every match drafted), so the figures do not depend on the machine's load.

    PYTHONPATH=. python tests/perf/tune_spec_policy.py [--max-tokens 64] [--split tune]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--split", default="tune", choices=("tune",), help="only the tuning half is for tuning")
    ap.add_argument("--concurrency", type=int, default=8)
    a = ap.parse_args()
    from engine import Engine, SamplingParams
    from sessions.bench import WorkloadOptions, build_workload, load_public_prompts

    eng = Engine.load("smollm2-135m", backend="torch", device="cpu", speculation="off", measure_bandwidth=False)
    out = {}
    try:
        for name, w in (("public-code-tune", "code-fix"), ("public-chat-tune", "chat")):
            n = len(load_public_prompts(w, a.split))
            items = build_workload(name, WorkloadOptions(n, a.max_tokens))
            eng.backend.set_speculation("ngram")
            sp = SamplingParams(max_tokens=a.max_tokens, temperature=0)
            for i in range(0, len(items), a.concurrency):
                hs = [eng.submit(it.prompt, sp) for it in items[i:i + a.concurrency]]
                for h in hs:
                    h.result(timeout=600)
            st = eng.stats()
            out[name] = {"by_match": st["spec_acceptance_by_match"], "survival": st["spec_draft_survival"],
                         "acceptance_rate": st["acceptance_rate"]}
            print(name, file=sys.stderr)
            for label, f in st["spec_acceptance_by_match"].items():
                print(f"  match {label:>6}: {f['verifies']:>5} verifies, first draft accepted {f['first_accepted']:.2f}, "
                      f"{f['accepted'] / f['verifies']:.2f} accepted a verify", file=sys.stderr)
    finally:
        eng.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
