"""Builds the independent semantic-cache pairs from CheckList's QQP suite (marcotcr/checklist, MIT):
question pairs people label as duplicates or not, made to test exactly what fools a similarity
score (antonyms, swapped roles, changed names and numbers, negation, tense) beside paraphrases,
typos and real Quora pairs. Cut to whole records, split once into a tuning and a report half.

    python sessions/data/make_public_cache_pairs.py /path/to/checklist/checkout

Writes sessions/data/public/qqp_checklist_pairs.jsonl ({"a", "b", "same", "family", "split"})."""
from __future__ import annotations

import io
import json
import pickle
import random
import re
import sys
import tarfile
from pathlib import Path

SPLIT_SEED = 20240615
PER_FAMILY = 80  # whole records kept per test (a record of a perturbation test is one original and its edits)
OUT = Path(__file__).resolve().parent / "public" / "qqp_checklist_pairs.jsonl"

# Minimum-functionality tests: (a, b) records with one label for the whole test. The suite stores
# label 1 for "Order does matter for asymmetric relations" although its name and its pairs ("Is Anthony
# punching Angela?" / "Is Angela punching Anthony?") say the opposite; we keep the pairs as different.
_LABEL_OVERRIDE = {"Order does matter for asymmetric relations": False}
# Left out: pairs whose suite label is not one meaning ("Order does not matter for comparison" mixes
# "what is cheaper, A or B" with "are B cheaper than A"), identical pairs (reflexivity) and the
# perturbation tests of QQP pairs whose own label the suite does not record.
_SKIP = {"Order does not matter for comparison", "Reflexivity: (q, q) should be duplicate"}
# Perturbation tests: each record is [(q1, q2), (edit(q1), q2), ...]; (q1, edit(q1)) is the pair.
_EDITS = {
    "(question, f(question)) where f(question) replaces synonyms?": ("synonym_edit", True),
    "add one typo": ("typo", True),
    "contrations": ("contraction", True),
    "Change first name in one of the questions": ("changed_first_name", False),
    "Change first and last name in one of the questions": ("changed_full_name", False),
    "Change location in one of the questions": ("changed_location", False),
    "Change numbers in one of the questions": ("changed_number", False),
}


class _Stub:
    """Stands for any class the pickle names that is not plain data (the suite's test objects,
    dill's function makers): it keeps its state and runs nothing."""

    def __init__(self, *args, **kwargs):
        self._args = args

    def __call__(self, *args, **kwargs):
        return _Stub(*args)

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self._state = state


class _DataOnly(pickle.Unpickler):
    """Loads the suite without the checklist package and without running anything it names."""

    def find_class(self, module, name):
        if module == "collections" and name in ("OrderedDict", "defaultdict"):
            return super().find_class(module, name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return super().find_class(module, name)
        return type(name, (_Stub,), {})


def _labels(stub) -> list[int]:
    """An int64 array pickled through dill: (version, shape, dtype, fortran, raw bytes)."""
    import numpy as np

    _, shape, dtype, _, raw = stub._state
    return [int(x) for x in np.frombuffer(raw, dtype=dtype).reshape(shape)]


def _family(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:90]


def load_suite(checkout: str):
    tar = tarfile.open(Path(checkout) / "release_suites" / "qqp_suite.tar.gz")
    member = next(m for m in tar.getmembers() if m.name.endswith("qqp_suite.pkl"))
    return _DataOnly(io.BytesIO(tar.extractfile(member).read())).load()


def records(suite) -> list[tuple[str, list[dict]]]:
    """(family, pairs of one whole record) for every test we keep."""
    out = []
    for name, test in suite.tests.items():
        d = test.__dict__
        if name in _SKIP:
            continue
        labels = d.get("labels")
        if isinstance(labels, int) and all(isinstance(x, tuple) and len(x) == 2 for x in d["data"]):
            same = _LABEL_OVERRIDE.get(name, bool(labels))
            for a, b in d["data"]:
                out.append((_family(name), [{"a": a, "b": b, "same": same}]))
        elif name in _EDITS:
            fam, same = _EDITS[name]
            for rec in d["data"]:
                edits = [p[0] for p in rec[1:] if p[0] != rec[0][0]]
                if edits:
                    out.append((fam, [{"a": rec[0][0], "b": edits[0], "same": same}]))
        elif name == "(q, paraphrase(q))":
            for rec in d["data"]:
                pairs = [{"a": a, "b": b, "same": True} for a, b in rec if a != b]
                out.append(("paraphrase", pairs[:3]))
        elif name == "Testing implications":  # real Quora pairs with their human labels
            for rec, lab in zip(d["data"], labels):
                out.append(("qqp_real", [{"a": a, "b": b, "same": bool(y)} for (a, b), y in zip(rec, _labels(lab))]))
    return out


def main(checkout: str) -> None:
    rng = random.Random(SPLIT_SEED)
    by_family: dict[str, list[list[dict]]] = {}
    for fam, pairs in records(load_suite(checkout)):
        by_family.setdefault(fam, []).append(pairs)
    rows, seen = [], set()
    for fam in sorted(by_family):
        recs = by_family[fam]
        rng.shuffle(recs)
        kept = 0
        for rec in recs:
            rec = [p for p in rec if (p["a"], p["b"]) not in seen]
            if not rec:
                continue
            split = "tune" if kept % 2 == 0 else "report"  # a whole record goes to one half
            for p in rec:
                seen.add((p["a"], p["b"]))
                rows.append({**p, "family": fam, "split": split})
            kept += 1
            if kept == PER_FAMILY:
                break
    OUT.parent.mkdir(exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    same = sum(r["same"] for r in rows)
    print(f"{len(rows)} pairs ({same} same, {len(rows) - same} different) in {len(by_family)} families; "
          f"{sum(r['split'] == 'tune' for r in rows)} tune / {sum(r['split'] == 'report' for r in rows)} report")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_public_cache_pairs.py CHECKLIST_CHECKOUT")
    main(sys.argv[1])
