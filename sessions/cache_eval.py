"""Measures the semantic cache on labelled pairs: store `a`, look up `b`, count hits on pairs
that mean the same and false hits on those that do not, overall, per family and per threshold."""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from engine.cache.alignment import AlignmentGuard
from engine.cache.guards import prompt_features, refusal
from engine.cache.semantic_cache import CacheScope, SemanticCache, SemanticCacheConfig
from sessions.errors import SessionsError

SWEEP = (0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92, 0.94)


class PairsError(SessionsError):
    """A pairs file that cannot be read; shown as one line."""


@dataclass(slots=True)
class Pair:
    a: str
    b: str
    same: bool
    family: str  # "none" for pairs without a family


def builtin_pairs_path() -> Path:
    return Path(str(resources.files("sessions.data") / "semantic_cache_pairs.jsonl"))


def load_pairs(path: str | Path) -> list[Pair]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PairsError(f"pairs file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PairsError(f"cannot read pairs file {path}: {e}") from None
    pairs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise PairsError(f"{path}:{n}: not JSON ({e.msg})") from None
        if not isinstance(d, dict) or not isinstance(d.get("a"), str) or not isinstance(d.get("b"), str) \
                or not isinstance(d.get("same"), bool):
            raise PairsError(f'{path}:{n}: each line needs "a" and "b" (strings) and "same" (true/false)')
        family = d.get("family")
        if family is not None and not isinstance(family, str):
            raise PairsError(f'{path}:{n}: "family" must be a string or null')
        pairs.append(Pair(d["a"], d["b"], d["same"], family or "none"))
    if not pairs:
        raise PairsError(f"pairs file {path} has no pairs")
    return pairs


def _rates(rows: list[tuple[Pair, bool]]) -> dict[str, Any]:
    same = [hit for p, hit in rows if p.same]
    other = [hit for p, hit in rows if not p.same]
    return {
        "same": len(same), "hits": sum(same), "hit_rate": sum(same) / len(same) if same else None,
        "other": len(other), "false_hits": sum(other),
        "false_hit_rate": sum(other) / len(other) if other else None,
    }


def evaluate(pairs: list[Pair], config: SemanticCacheConfig, embedder: Any = None) -> dict[str, Any]:
    """Runs every pair through a real SemanticCache (one scope per pair, so pairs never meet)."""
    cache = SemanticCache(
        SemanticCacheConfig(threshold=config.threshold, ttl_s=0, max_entries=len(pairs) + 1,
                            guards=config.guards, near_miss_band=config.near_miss_band,
                            alignment_guard=config.alignment_guard, paraphrase_similarity=config.paraphrase_similarity,
                            insertion_similarity=config.insertion_similarity,
                            context_similarity=config.context_similarity),
        embedder=embedder,
    )
    vecs = cache.embed([p.a for p in pairs] + [p.b for p in pairs])
    va, vb = vecs[: len(pairs)], vecs[len(pairs):]
    outcomes, sims, verdicts = [], [], []
    for i, p in enumerate(pairs):
        scope = CacheScope("eval", str(i), "none", "none", "greedy")
        cache.store(p.a, scope, f"answer {i}", vector=va[i])
        probe = cache.probe(p.b, scope, vector=vb[i])
        outcomes.append((p, probe.hit is not None))
        sims.append(float(va[i] @ vb[i]))
        verdict = refusal(prompt_features(p.a), prompt_features(p.b))
        if verdict is None and config.alignment_guard:
            verdict = cache.alignment.refusal(p.a, p.b, sims[-1])
        verdicts.append(verdict)
    result = {"pairs": len(pairs), "threshold": config.threshold, "guards": config.guards,
              "alignment_guard": config.alignment_guard, **_rates(outcomes)}
    families = sorted({p.family for p in pairs})
    result["by_family"] = {}
    for fam in families:
        rows = [o for o in outcomes if o[0].family == fam]
        refused: dict[str, int] = {}
        for (p, _), v in zip(outcomes, verdicts):
            if p.family == fam and v:
                refused[v] = refused.get(v, 0) + 1
        result["by_family"][fam] = {**_rates(rows), "refused_by_guard": refused}
    sweep = sorted(set(SWEEP) | {round(config.threshold, 4)})
    result["by_threshold"] = []
    for t in sweep:
        guarded = [(p, s >= t and v is None) for p, s, v in zip(pairs, sims, verdicts)]
        bare = [(p, s >= t) for p, s in zip(pairs, sims)]
        g, b = _rates(guarded), _rates(bare)
        result["by_threshold"].append({
            "threshold": t, "hit_rate": g["hit_rate"], "false_hit_rate": g["false_hit_rate"],
            "hit_rate_no_guards": b["hit_rate"], "false_hit_rate_no_guards": b["false_hit_rate"],
        })
    result["false_hit_examples"] = [
        {"a": p.a, "b": p.b, "family": p.family, "similarity": round(s, 4)}
        for (p, hit), s in zip(outcomes, sims) if hit and not p.same
    ]
    result["missed_examples"] = [
        {"a": p.a, "b": p.b, "family": p.family, "similarity": round(s, 4), "refused_by": v}
        for (p, hit), s, v in zip(outcomes, sims, verdicts) if not hit and p.same
    ][:20]
    return result
