"""Builds the independent tool-routing set from MetaTool (HowieHwong/MetaTool, MIT): its tool
descriptions and single-tool user queries, cut to whole records and split once into a tuning half
and a report half, so figures on the report half were never tuned on.

    python sessions/data/make_public_routing_set.py /path/to/MetaTool/checkout

Writes sessions/data/public/metatool_tools.json (OpenAI-style definitions) and
metatool_queries.jsonl ({"query", "tool" or null, "split": "tune"|"report"}). Queries of the tools
held out of the list stand for turns no offered tool fits (the abstain case)."""
from __future__ import annotations

import csv
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

SPLIT_SEED = 20240615
PER_TOOL = 30  # queries kept per tool (whole rows of all_clean_data.csv)
HELD_OUT_TOOLS = 20  # tools left out of the list: their queries have no fitting tool
PER_HELD_OUT = 10
OUT = Path(__file__).resolve().parent / "public"


def main(checkout: str) -> None:
    root = Path(checkout)
    descriptions = json.loads((root / "dataset" / "plugin_des.json").read_text(encoding="utf-8"))
    by_tool: dict[str, list[str]] = defaultdict(list)
    with open(root / "dataset" / "data" / "all_clean_data.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            q = row["Query"].strip()
            if q and q not in by_tool[row["Tool"]]:
                by_tool[row["Tool"]].append(q)
    rng = random.Random(SPLIT_SEED)
    names = sorted(descriptions)
    held_out = set(rng.sample(names, HELD_OUT_TOOLS))
    tools = [{"name": n, "description": descriptions[n]} for n in names if n not in held_out]
    rows, seen = [], set()
    for name in names:
        qs = [q for q in by_tool[name] if q not in seen]
        rng.shuffle(qs)
        qs = qs[: PER_HELD_OUT if name in held_out else PER_TOOL]
        seen.update(qs)
        for i, q in enumerate(qs):
            # half of each tool's queries in each half, so both halves ask for every tool
            rows.append({"query": q, "tool": None if name in held_out else name,
                         "split": "tune" if i % 2 == 0 else "report"})
    rng.shuffle(rows)
    OUT.mkdir(exist_ok=True)
    (OUT / "metatool_tools.json").write_text(json.dumps(tools, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    with open(OUT / "metatool_queries.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(tools)} tools ({len(held_out)} held out), {len(rows)} queries "
          f"({sum(r['split'] == 'tune' for r in rows)} tune / {sum(r['split'] == 'report' for r in rows)} report)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_public_routing_set.py METATOOL_CHECKOUT")
    main(sys.argv[1])
