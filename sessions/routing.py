"""The intent layer before tool dispatch: tool descriptions embedded with all-MiniLM-L6-v2, and
labelled examples (user turn -> tool called) where there are some; each user turn routed to its
top-k tools or to none, scored on a labelled set with the tokens it saves."""
from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from sessions.errors import SessionsError


class RoutingError(SessionsError):
    """A bad tools or queries file."""


def _fn(tool: dict[str, Any]) -> dict[str, Any]:
    return tool.get("function", tool) if isinstance(tool.get("function"), dict) else tool


def tool_name(tool: dict[str, Any]) -> str:
    return _fn(tool)["name"]


def _name_words(name: str) -> str:
    words = re.sub(r"[_\-.]+", " ", name)
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", words).lower()


def tool_views(tool: dict[str, Any]) -> list[str]:
    """The texts embedded for a tool; their mean is its vector. The name alone matters
    (`track_package` says as much as its sentence); the full view adds the parameters."""
    f = _fn(tool)
    words = _name_words(f["name"])
    desc = f.get("description", "")
    props = (f.get("parameters") or {}).get("properties") or {}
    params = "; ".join(f"{p.replace('_', ' ')}: {(v or {}).get('description', '')}".strip() for p, v in props.items())
    return [words, desc or words, f"{words}. {desc}", f"{words}. {desc}" + (f" Parameters: {params}" if params else "")]


_STOP = frozenset("a an the to of for in on at by with from and or is are be my me i you your it this that what whats "
                  "how do does can could will would please some any there here get set make find show give need want".split())


def keywords(text: str) -> set[str]:
    """Lower-case words without stop words, crudely stemmed, for the lexical half of the score."""
    out = set()
    for w in re.findall(r"[a-z0-9]+", text.lower()):
        if w in _STOP or len(w) < 2:
            continue
        for suf in ("ing", "ed", "es", "s"):
            if w.endswith(suf) and len(w) - len(suf) >= 3:
                w = w[: -len(suf)]
                break
        out.add(w)
    return out


def load_tools(path: str | Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RoutingError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RoutingError(f"{path}: not a JSON file: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("tools"), list):
        data = data["tools"]
    if not isinstance(data, list) or not data:
        raise RoutingError(f"{path}: expected a JSON list of function definitions")
    names = set()
    for i, t in enumerate(data):
        f = _fn(t) if isinstance(t, dict) else None
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not isinstance(f.get("description", ""), str):
            raise RoutingError(f"{path}: $[{i}]: a function definition needs a string 'name' and 'description'")
        if f["name"] in names:
            raise RoutingError(f"{path}: $[{i}]: tool {f['name']!r} is defined twice")
        names.add(f["name"])
    return data


def load_queries(path: str | Path, tool_names: set[str] | None = None) -> list[dict[str, Any]]:
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RoutingError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RoutingError(f"{path}: cannot read: {e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except ValueError as e:
            raise RoutingError(f"{path}: line {n}: not JSON: {e}") from None
        if not isinstance(r, dict) or not isinstance(r.get("query"), str) or "tool" not in r:
            raise RoutingError(f"{path}: line {n}: expected {{\"query\": \"...\", \"tool\": \"name\" or null}}")
        if r["tool"] is not None and tool_names is not None and r["tool"] not in tool_names:
            raise RoutingError(f"{path}: line {n}: tool {r['tool']!r} is not in the tools file")
        rows.append({"query": r["query"], "tool": r["tool"]})
    if not rows:
        raise RoutingError(f"{path}: no queries")
    return rows


class CachedEmbedder:
    """The real embedder with a memo: evaluating many tool subsets embeds each text once."""

    def __init__(self, embedder: Any):
        import numpy as np

        self._np = np
        self.inner = embedder
        self.dim = embedder.dim
        self._memo: dict[str, Any] = {}

    def encode(self, texts: Sequence[str]):
        todo = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if todo:
            for t, v in zip(todo, self.inner.encode(todo)):
                self._memo[t] = v
        if not texts:
            return self._np.zeros((0, self.dim), dtype=self._np.float32)
        return self._np.stack([self._memo[t] for t in texts])


@dataclass(slots=True)
class Route:
    query: str
    tools: list[str]  # what the model is sent: the top-k, or nothing when abstaining
    scores: list[float]  # cosine of each of the top-k, best first (kept when abstaining)
    ranked: list[str]  # the top-k names whether or not the router abstained
    abstained: bool
    tokens_all: int = 0  # tool-definition tokens with every tool sent
    tokens_sent: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "tools": self.tools, "ranked": self.ranked, "scores": [round(s, 4) for s in self.scores],
                "abstained": self.abstained, "tokens_all": self.tokens_all, "tokens_sent": self.tokens_sent,
                "tokens_saved": self.tokens_all - self.tokens_sent}


@dataclass(slots=True)
class ExampleWeights:
    """How labelled examples enter the score (fitted on the tuning half of the MetaTool set, see
    tests/perf/bench_routing_public.py): the description score is kept at `description`, and a tool
    with examples adds `nearest` times the cosine to its closest example plus `centroid` times the
    cosine to the mean of its examples. A tool without examples adds its description cosine at the
    same total weight, so tools nobody has called yet are not pushed down the list."""

    description: float = 0.5
    nearest: float = 0.5
    centroid: float = 1.0


@dataclass
class ToolRouter:
    """Embeds the tool list once; `route` costs one query embedding and a matrix product. The score
    is the cosine to the tool's mean view vector plus `lexical_weight` times the idf-weighted share
    of the query's keywords found in the tool's name and description (hybrid retrieval: a small
    embedding model misses rare exact words like 'inbox' or 'SQL' that a keyword match catches).
    With `examples` ((user turn, tool name) pairs, e.g. learned from traces) each tool is also the
    set of turns that called it: descriptions say what a tool does in its author's words, the
    examples say it in its users' words, and the two together generalise past either one."""

    tools: list[dict[str, Any]]
    k: int = 5
    abstain_threshold: float = 0.3
    embedder: Any = None  # engine.embeddings.Embedder
    count_tokens: Callable[[str], int] | None = None
    lexical_weight: float = 0.3
    examples: Sequence[tuple[str, str]] = ()
    example_weights: ExampleWeights = field(default_factory=ExampleWeights)
    names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        import numpy as np

        if self.embedder is None:
            from engine.embeddings import load_embedder

            self.embedder = load_embedder()
        if not self.tools:
            raise RoutingError("no tools to route to")
        self.names = [tool_name(t) for t in self.tools]
        views = [tool_views(t) for t in self.tools]
        flat = self.embedder.encode([v for vs in views for v in vs]).reshape(len(views), len(views[0]), -1)
        vecs = flat.mean(axis=1)
        self._vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        self._docs = [keywords(vs[2]) for vs in views]
        df: dict[str, int] = {}
        for d in self._docs:
            for w in d:
                df[w] = df.get(w, 0) + 1
        n = len(self._docs)
        self._df, self._n = df, n
        self._tokens = [self._definition_tokens(t) for t in self.tools]
        self._set_examples(self.examples)

    def _set_examples(self, examples: Sequence[tuple[str, str]]) -> None:
        """Examples of tools not in the list are ignored (a trace may call tools this list lacks)."""
        import numpy as np

        index = {n: j for j, n in enumerate(self.names)}
        kept = [(q, index[t]) for q, t in dict.fromkeys((q, t) for q, t in examples) if t in index and q.strip()]
        self.examples = [(q, self.names[j]) for q, j in kept]
        self._ex_vecs = self.embedder.encode([q for q, _ in kept]) if kept else None
        self._ex_tool = np.array([j for _, j in kept], dtype=np.int64)
        self._centroids = np.zeros_like(self._vecs)
        self._has_examples = np.zeros(len(self.names), dtype=bool)
        for j in set(self._ex_tool.tolist()):
            c = self._ex_vecs[self._ex_tool == j].mean(axis=0)
            self._centroids[j] = c / np.linalg.norm(c)
            self._has_examples[j] = True

    @property
    def example_count(self) -> int:
        return len(self.examples)

    def _idf(self, w: str) -> float:
        return math.log((self._n + 1) / (self._df.get(w, 0) + 0.5))

    def _definition_tokens(self, tool: dict[str, Any]) -> int:
        if self.count_tokens is None:
            return 0
        from sessions.budget import tool_json

        return self.count_tokens(tool_json(tool))

    def scores(self, queries: Sequence[str]):
        import numpy as np

        qv = self.embedder.encode(list(queries))
        cos = qv @ self._vecs.T
        sims = cos
        if self.lexical_weight:
            lex = np.zeros_like(sims)
            for i, q in enumerate(queries):
                qk = keywords(q)
                den = sum(self._idf(w) for w in qk)
                if den <= 0:
                    continue
                for j, d in enumerate(self._docs):
                    hit = qk & d
                    if hit:
                        lex[i, j] = sum(self._idf(w) for w in hit) / den
            sims = sims + self.lexical_weight * lex
        if self._ex_vecs is None:
            return sims
        w = self.example_weights
        ex = qv @ self._ex_vecs.T
        nearest = np.full_like(sims, -1.0)
        np.maximum.at(nearest.T, self._ex_tool, ex.T)  # per tool: the best of its examples
        learned = w.nearest * nearest + w.centroid * (qv @ self._centroids.T)
        fallback = (w.nearest + w.centroid) * cos
        return w.description * sims + np.where(self._has_examples, learned, fallback)

    def route(self, query: str) -> Route:
        return self.route_many([query])[0]

    def route_many(self, queries: Sequence[str]) -> list[Route]:
        sims = self.scores(queries)
        k = min(self.k, len(self.names))
        total = sum(self._tokens)
        out = []
        for q, row in zip(queries, sims):
            top = sorted(range(len(row)), key=lambda j: -row[j])[:k]
            abstain = float(row[top[0]]) < self.abstain_threshold
            ranked = [self.names[j] for j in top]
            sent = sum(self._tokens[j] for j in top)
            r = Route(q, ranked, [float(row[j]) for j in top], ranked, False, total, sent)
            if abstain:
                _set_abstain(r, self.abstain_threshold)
            out.append(r)
        return out

    def select(self, query: str) -> list[dict[str, Any]]:
        """The tool definitions to send with this user turn."""
        keep = set(self.route(query).tools)
        return [t for t in self.tools if tool_name(t) in keep]


def score_routes(routes: list[Route], labels: list[str | None], k: int) -> dict[str, Any]:
    """top1/topk over queries that have a tool, with abstentions counted as misses (the model
    would not see the tool); ranking-only figures alongside; abstain precision/recall over null queries."""
    with_tool = [(r, t) for r, t in zip(routes, labels) if t is not None]
    null = [r for r, t in zip(routes, labels) if t is None]
    abstained = [t for r, t in zip(routes, labels) if r.abstained]
    n = len(with_tool) or 1
    out = {
        "k": k,
        "queries": len(routes),
        "queries_with_tool": len(with_tool),
        "queries_without_tool": len(null),
        "top1": sum(bool(r.tools) and r.tools[0] == t for r, t in with_tool) / n,
        "topk": sum(t in r.tools for r, t in with_tool) / n,
        "top1_ranking": sum(r.ranked[0] == t for r, t in with_tool) / n,
        "topk_ranking": sum(t in r.ranked for r, t in with_tool) / n,
        "abstain_precision": (sum(t is None for t in abstained) / len(abstained)) if abstained else None,
        "abstain_recall": (sum(r.abstained for r in null) / len(null)) if null else None,
        "false_abstain_rate": sum(r.abstained for r, _ in with_tool) / n,
    }
    all_tokens = sum(r.tokens_all for r in routes)
    sent = sum(r.tokens_sent for r in routes)
    out["tool_definition_tokens_all"] = all_tokens
    out["tool_definition_tokens_sent"] = sent
    out["tokens_saved_fraction"] = (1 - sent / all_tokens) if all_tokens else None
    return out


def calibrate_threshold(top_scores: list[float], labels: list[str | None], min_tool_recall: float = 0.98) -> float:
    """The highest threshold that still keeps `min_tool_recall` of tool queries (they are the
    costlier error: a missing tool fails the task, a spare one costs tokens); among those, the one
    that abstains on the most null queries."""
    tool_scores = sorted(s for s, t in zip(top_scores, labels) if t is not None)
    if not tool_scores:
        return 0.0
    allowed = int((1 - min_tool_recall) * len(tool_scores))  # tool queries we may abstain on
    # just under the (allowed+1)-th lowest tool score: abstain on at most `allowed` of them
    return float(tool_scores[allowed]) - 1e-6


def evaluate(tools: list[dict[str, Any]], queries: list[dict[str, Any]], *, k: int = 5, threshold: float | None = None,
             embedder: Any = None, count_tokens: Callable[[str], int] | None = None, lexical_weight: float = 0.3,
             examples: Sequence[tuple[str, str]] = (), example_weights: ExampleWeights | None = None,
             ) -> tuple[dict[str, Any], list[Route]]:
    """Route every query; with `threshold=None` the threshold is calibrated by 2-fold cross-validation
    (each half is scored with the threshold fitted on the other), so the figures are not fitted to themselves.
    `examples` must not include the queries scored (a query would find itself)."""
    router = ToolRouter(tools, k, threshold if threshold is not None else -1.0, embedder, count_tokens, lexical_weight,
                        examples, example_weights or ExampleWeights())
    labels = [q["tool"] for q in queries]
    if threshold is not None:
        routes = router.route_many([q["query"] for q in queries])
        return {**score_routes(routes, labels, k), "abstain_threshold": threshold, "calibrated": False,
                "examples": router.example_count}, routes
    routes = router.route_many([q["query"] for q in queries])  # threshold -1: nothing abstains yet
    idx = list(range(len(queries)))
    random.Random(0).shuffle(idx)
    folds = [idx[0::2], idx[1::2]]
    fitted = []
    for a, b in ((0, 1), (1, 0)):
        th = calibrate_threshold([routes[i].scores[0] for i in folds[a]], [labels[i] for i in folds[a]])
        fitted.append(th)
        for i in folds[b]:
            _set_abstain(routes[i], th)
    full = calibrate_threshold([r.scores[0] for r in routes], labels)
    return {**score_routes(routes, labels, k), "abstain_threshold": full, "fold_thresholds": fitted,
            "calibrated": True, "examples": router.example_count}, routes


def _set_abstain(r: Route, threshold: float) -> None:
    r.abstained = r.scores[0] < threshold
    r.tools = [] if r.abstained else list(r.ranked)
    if r.abstained:
        r.tokens_sent = 0


def subset_accuracy(tools: list[dict[str, Any]], queries: list[dict[str, Any]], sizes: Sequence[int], *, k: int = 5,
                    threshold: float, embedder: Any = None, repeats: int = 5, seed: int = 0, lexical_weight: float = 0.3) -> list[dict[str, Any]]:
    """Accuracy as the tool list grows: for each size, random tool subsets (seeded), scored on the
    queries whose tool is in the subset plus every null query."""
    rng = random.Random(seed)
    if embedder is None:
        from engine.embeddings import load_embedder

        embedder = load_embedder()
    if not isinstance(embedder, CachedEmbedder):
        embedder = CachedEmbedder(embedder)
    names = [tool_name(t) for t in tools]
    out = []
    for size in sizes:
        rows = []
        for _ in range(1 if size >= len(tools) else repeats):
            pick = set(rng.sample(names, min(size, len(names))))
            sub = [t for t in tools if tool_name(t) in pick]
            qs = [q for q in queries if q["tool"] is None or q["tool"] in pick]
            m, _ = evaluate(sub, qs, k=k, threshold=threshold, embedder=embedder, lexical_weight=lexical_weight)
            rows.append(m)
        avg = {key: sum(r[key] for r in rows) / len(rows) for key in ("top1", "topk", "top1_ranking", "topk_ranking")}
        out.append({"tools": min(size, len(names)), "subsets": len(rows), **avg})
    return out
