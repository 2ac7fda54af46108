"""The public prompt set for the speculation policy: whole records with their sources, one fixed
split into a tuning half and a report half that share no record, and the workloads built from it."""
from __future__ import annotations

import json
import random

from sessions.bench import PUBLIC_PROMPTS, WorkloadOptions, build_workload, load_public_prompts
from sessions.data.make_spec_prompts import SPLIT_SEED, split


def test_halves_are_disjoint_and_every_record_names_its_source():
    rows = [json.loads(line) for line in PUBLIC_PROMPTS.read_text().splitlines()]
    assert 60 <= len(rows) <= 100
    for w in ("code-fix", "chat"):
        tune = {r["id"] for r in load_public_prompts(w, "tune")}
        report = {r["id"] for r in load_public_prompts(w, "report")}
        assert tune and report and not tune & report
        assert abs(len(tune) - len(report)) <= 1
    for r in rows:
        src = r["source"]
        assert src["license"] == "Apache-2.0" and len(src["commit"]) == 40 and src["repo"] and src["path"]
    assert all(r["record"]["buggy_code"] for r in rows if r["workload"] == "code-fix")


def test_the_split_is_the_fixed_seed_one():
    rows = [json.loads(line) for line in PUBLIC_PROMPTS.read_text().splitlines()]
    for w in ("code-fix", "chat"):
        mine = [dict(r) for r in rows if r["workload"] == w]
        again = {r["id"]: r["split"] for r in split([dict(r) for r in mine])}
        assert again == {r["id"]: r["split"] for r in mine}
    assert SPLIT_SEED == 20240615 and random.Random(SPLIT_SEED).random() != random.Random(0).random()


def test_public_workloads_cycle_their_half():
    n = len(load_public_prompts("code-fix", "report"))
    items = build_workload("public-code-report", WorkloadOptions(n + 2, 16))
    assert len(items) == n + 2 and items[0].name == items[n].name and items[0].max_tokens == 16
    assert "Output only the code." in items[0].prompt[0]["content"] and "```python" in items[0].prompt[0]["content"]
    chat = build_workload("public-chat-tune", WorkloadOptions(3, 16))
    assert all(i.name.startswith("chat:mt_bench:") for i in chat)
