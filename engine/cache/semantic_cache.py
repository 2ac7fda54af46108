"""A semantic cache in front of any backend: a new prompt that means the same as a stored one, in
the same scope (model, system prompt, tools, history, sampling), gets the stored answer."""
from __future__ import annotations

import hashlib
import json
import random
import statistics
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from engine.cache.alignment import ALIGNMENT_GUARD_NAMES, AlignmentGuard
from engine.cache.guards import GUARD_NAMES, PromptFeatures, prompt_features, refusal
from engine.types import EngineError, Prompt, SamplingParams, flatten_content


# ---- configuration and scope ----


@dataclass(slots=True)
class SemanticCacheConfig:
    threshold: float = 0.88  # cosine similarity a hit needs (see `workbench cache eval`)
    ttl_s: float = 7 * 86400.0  # <= 0: entries never expire
    max_entries: int = 100_000
    cache_sampled: bool = False  # cache requests with temperature > 0 too
    audit_rate: float = 0.0  # share of hits that are generated anyway to check the cached answer
    guards: bool = True
    # the alignment guard (engine.cache.alignment): substitutions that are no paraphrase, added
    # content, swapped roles; thresholds fitted on the tuning half of the CheckList QQP pairs
    alignment_guard: bool = True
    paraphrase_similarity: float = 0.75
    insertion_similarity: float = 0.98
    context_similarity: float = 0.95
    near_miss_band: float = 0.1  # a miss whose best similarity is within this of the threshold
    audit_seed: int | None = None

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise EngineError(f"semantic cache threshold must be in [-1, 1] (got {self.threshold})")
        if self.max_entries < 1:
            raise EngineError(f"semantic cache max_entries must be >= 1 (got {self.max_entries})")
        if not 0.0 <= self.audit_rate <= 1.0:
            raise EngineError(f"semantic cache audit_rate must be in [0, 1] (got {self.audit_rate})")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SemanticCacheConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def _sha(obj: Any) -> str:
    raw = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def split_prompt(prompt: Prompt) -> tuple[str, str, list[dict[str, Any]]]:
    """(text that is embedded, system prompt, the rest of the conversation). The text is the
    last user turn; everything before it decides the scope, since it changes the answer."""
    if isinstance(prompt, str):
        return prompt, "", []
    last_user = max((i for i, m in enumerate(prompt) if m.get("role") == "user"), default=None)
    if last_user is None:
        raise EngineError("a cached prompt needs at least one user message")
    system = "\n".join(flatten_content(m.get("content")) for m in prompt if m.get("role") in ("system", "developer"))
    history = [{"role": "<query>"} if i == last_user else m
               for i, m in enumerate(prompt) if m.get("role") not in ("system", "developer")]
    return flatten_content(prompt[last_user].get("content")), system, history


def sampling_key(params: SamplingParams | None) -> str:
    """What of the sampling changes the answer: greedy requests differ only in length and stops."""
    if params is None:
        return "default"
    if params.greedy:
        return f"greedy;max_tokens={params.max_tokens};stop={_sha(list(params.stop))}"
    return "sampled;" + _sha(params.to_dict())


@dataclass(slots=True, frozen=True)
class CacheScope:
    """Entries only answer prompts of the same scope."""

    model: str
    system_hash: str
    tools_hash: str
    history_hash: str
    sampling: str

    @property
    def key(self) -> str:
        return _sha([self.model, self.system_hash, self.tools_hash, self.history_hash, self.sampling])

    @classmethod
    def for_request(cls, model: str, prompt: Prompt, params: SamplingParams | None = None,
                    tools: Any = None) -> "CacheScope":
        _, system, history = split_prompt(prompt)
        return cls(
            model=model,
            system_hash=_sha(system) if system else "none",
            tools_hash=_sha(tools) if tools else "none",
            history_hash=_sha(history) if len(history) > 1 else "none",
            sampling=sampling_key(params),
        )


# ---- records exchanged with the backing store ----


@dataclass(slots=True)
class CacheEntry:
    entry_id: str
    scope_key: str
    model: str
    prompt: str
    answer: str
    vector: np.ndarray | None  # unit float32; dropped from memory once indexed
    created_at: float  # unix seconds (entries outlive the process, so wall time)
    last_used_at: float
    hits: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    features: PromptFeatures | None = None  # computed on first comparison


@dataclass(slots=True)
class Hit:
    entry_id: str
    answer: str
    similarity: float
    cached_prompt: str
    created_at: float
    scope_key: str
    audit: bool = False  # generate anyway and call record_audit(hit, fresh_answer)

    @property
    def distance(self) -> float:
        return 1.0 - self.similarity


@dataclass(slots=True)
class Probe:
    """Everything a lookup found out: the hit, or why there was none."""

    hit: Hit | None
    best_similarity: float | None  # None: nothing in scope within the near-miss band
    refused_by: str | None  # the guard that refused the most similar candidate above threshold
    lookup_ms: float = 0.0


@dataclass(slots=True)
class LookupRecord:
    t: float
    scope_key: str
    model: str
    hit: bool
    similarity: float | None
    refused_by: str | None
    entry_id: str | None
    lookup_ms: float


@dataclass(slots=True)
class AuditRecord:
    t: float
    entry_id: str
    similarity: float
    differed: bool
    answer_similarity: float | None
    cached_prompt: str
    prompt: str
    cached_answer: str
    fresh_answer: str


class CacheBacking(Protocol):
    """Where entries live between runs (sessions.cache_store.CacheStore over DuckDB)."""

    def load_entries(self) -> Iterable[CacheEntry]: ...
    def put(self, entry: CacheEntry) -> None: ...
    def delete(self, entry_ids: Sequence[str]) -> None: ...
    def touch(self, entry_id: str, last_used_at: float, hits: int) -> None: ...
    def clear(self) -> int: ...
    def record_lookup(self, record: LookupRecord) -> None: ...
    def record_audit(self, record: AuditRecord) -> None: ...


# ---- exact nearest-neighbour search ----


class VectorIndex:
    """Exact maximum inner product over unit rows, in memory.

    A full scan of 100,000 x 384 float32 reads 154 MB, about 15 ms at this CPU's memory
    bandwidth. So past `prune_min_rows` the rows are kept in a PCA basis (an orthogonal
    rotation: dot products unchanged) split into the leading dims and the tail. The leading
    dims give a partial score; partial + |q_tail| * |x_tail| bounds the full score
    (Cauchy-Schwarz), and only rows whose bound reaches `floor` are scored in full. Every row
    scoring >= floor is found: the search is exact, it just reads ~1/6 of the bytes."""

    lead_dims = 64
    prune_min_rows = 16_384

    def __init__(self, dim: int):
        self.dim = dim
        self.n = 0
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}
        self._rot: np.ndarray | None = None  # rows = basis vectors; x_rot = rot @ x
        self._fit_n = 0
        cap = 64
        self._lead = np.empty((cap, min(self.lead_dims, dim)), np.float32)
        self._tail = np.empty((cap, dim - self._lead.shape[1]), np.float32)
        self._tail_norm = np.empty(cap, np.float32)

    def __len__(self) -> int:
        return self.n

    def _grow(self, need: int) -> None:
        cap = self._lead.shape[0]
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        for name in ("_lead", "_tail", "_tail_norm"):
            old = getattr(self, name)
            new = np.empty((cap, *old.shape[1:]), np.float32)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def _rotate(self, vecs: np.ndarray) -> np.ndarray:
        return vecs if self._rot is None else vecs @ self._rot.T

    def add_many(self, ids: Sequence[str], vecs: np.ndarray) -> None:
        vecs = np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(ids), self.dim)
        self._grow(self.n + len(ids))
        rot = self._rotate(vecs)
        lead = self._lead.shape[1]
        sl = slice(self.n, self.n + len(ids))
        self._lead[sl] = rot[:, :lead]
        self._tail[sl] = rot[:, lead:]
        self._tail_norm[sl] = np.linalg.norm(rot[:, lead:], axis=1)
        for k, entry_id in enumerate(ids):
            self.pos[entry_id] = self.n + k
            self.ids.append(entry_id)
        self.n += len(ids)
        if self.n >= self.prune_min_rows and self.n >= 4 * self._fit_n:
            self._fit()

    def add(self, entry_id: str, vec: np.ndarray) -> None:
        self.add_many([entry_id], vec[None, :])

    def remove(self, entry_id: str) -> None:
        i = self.pos.pop(entry_id)
        last = self.n - 1
        if i != last:  # move the last row into the hole
            for arr in (self._lead, self._tail, self._tail_norm):
                arr[i] = arr[last]
            moved = self.ids[last]
            self.ids[i] = moved
            self.pos[moved] = i
        self.ids.pop()
        self.n -= 1

    def _fit(self) -> None:
        """Basis of the uncentered second moment: the leading dims then carry most of each
        dot product, which makes the bound tight."""
        rows = np.concatenate([self._lead[: self.n], self._tail[: self.n]], axis=1)
        if self._rot is not None:
            rows = rows @ self._rot  # back to the original basis
        sample = rows[np.random.default_rng(0).choice(self.n, min(self.n, 20_000), replace=False)]
        _, vecs = np.linalg.eigh(sample.T @ sample)
        rot = np.ascontiguousarray(vecs[:, ::-1].T, dtype=np.float32)
        self._rot = None
        self.n, ids = 0, self.ids
        self.ids, self.pos = [], {}
        self._rot = rot
        self._fit_n = len(ids)
        self.add_many(ids, rows)

    def search(self, q: np.ndarray, floor: float, k: int = 16) -> list[tuple[str, float]]:
        """Up to k (id, similarity) pairs with similarity >= floor, best first."""
        if self.n == 0:
            return []
        n, lead = self.n, self._lead.shape[1]
        qr = self._rotate(np.asarray(q, np.float32)[None, :])[0]
        q_lead, q_tail = qr[:lead], qr[lead:]
        partial = self._lead[:n] @ q_lead
        if self._rot is None:
            scores = partial + self._tail[:n] @ q_tail
            cand = np.flatnonzero(scores >= floor)
            cand_scores = scores[cand]
        else:
            bound = partial + float(np.linalg.norm(q_tail)) * self._tail_norm[:n]
            cand = np.flatnonzero(bound >= floor - 1e-5)  # slack for float rounding
            if len(cand) > n // 4:
                # gathering rows costs about three times a sequential read: past a quarter
                # of the rows a full scan of the tail is cheaper
                cand_scores = (partial + self._tail[:n] @ q_tail)[cand]
            else:
                cand_scores = partial[cand] + self._tail[cand] @ q_tail
            keep = cand_scores >= floor
            cand, cand_scores = cand[keep], cand_scores[keep]
        if len(cand) > k:
            top = np.argpartition(-cand_scores, k - 1)[:k]
            cand, cand_scores = cand[top], cand_scores[top]
        order = np.argsort(-cand_scores)
        return [(self.ids[int(cand[i])], float(cand_scores[i])) for i in order]


# ---- figures ----


@dataclass(slots=True)
class CacheFigures:
    lookups: int = 0
    hits: int = 0
    skipped: int = 0  # requests not cacheable (sampled), never looked up
    stores: int = 0
    evictions: int = 0
    expired: int = 0
    refusals: dict[str, int] = field(default_factory=lambda: {g: 0 for g in GUARD_NAMES + ALIGNMENT_GUARD_NAMES})
    near_miss_distances: deque = field(default_factory=lambda: deque(maxlen=1000))
    lookup_ms: deque = field(default_factory=lambda: deque(maxlen=1000))
    audits: int = 0
    audit_differed: int = 0


def _normalize_answer(text: str) -> str:
    return " ".join(text.lower().split())


class SemanticCache:
    """Hits need cosine similarity >= threshold and must pass the lexical guards (engine.cache.guards);
    entries expire (TTL) and are evicted least-recently-used past a size cap. Persistence goes
    through `CacheBacking` (sessions.cache_store implements it over DuckDB); this room never imports it.

    How a caller uses it:
        scope = cache.scope_for(model, prompt, params, tools)   # None: not cacheable (sampled)
        hit = cache.lookup(prompt, scope)                        # before submitting
        if hit and not hit.audit: answer = hit.answer            # served from cache
        else: answer = generate(); hit and cache.record_audit(hit, answer) or cache.store(prompt, scope, answer)
    """

    def __init__(self, config: SemanticCacheConfig | None = None, backing: CacheBacking | None = None,
                 embedder: Any = None, clock: Callable[[], float] = time.time):
        """`embedder` has `encode(texts) -> unit float32 rows` and `dim`; default: all-MiniLM-L6-v2,
        loaded on first use. `clock` gives unix seconds (TTL and LRU)."""
        self.config = config or SemanticCacheConfig()
        self.backing = backing
        self._embedder = embedder
        self.clock = clock
        self.figures = CacheFigures()
        self._entries: dict[str, CacheEntry] = {}
        self._indexes: dict[str, VectorIndex] = {}
        self._lru: OrderedDict[str, None] = OrderedDict()  # oldest use first
        self._lock = threading.RLock()
        self._rng = random.Random(self.config.audit_seed)
        self._alignment: AlignmentGuard | None = None
        if backing is not None:
            self._load(backing.load_entries())

    # ---- embedding ----
    @property
    def embedder(self):
        if self._embedder is None:
            from engine.embeddings import load_embedder

            self._embedder = load_embedder()
        return self._embedder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.encode(list(texts))

    @property
    def alignment(self) -> AlignmentGuard:
        """Shares the cache's embedder; its phrase vectors are memoised across lookups."""
        if self._alignment is None:
            cfg = self.config
            self._alignment = AlignmentGuard(self.embedder, cfg.paraphrase_similarity, cfg.insertion_similarity,
                                             cfg.context_similarity)
        return self._alignment

    # ---- scope ----
    def scope_for(self, model: str, prompt: Prompt, params: SamplingParams | None = None,
                  tools: Any = None) -> CacheScope | None:
        """The scope of a request, or None when it must not be cached (temperature > 0
        unless `cache_sampled`): a sampled answer is one draw, not the answer."""
        if params is not None and not params.greedy and not self.config.cache_sampled:
            with self._lock:
                self.figures.skipped += 1
            return None
        return CacheScope.for_request(model, prompt, params, tools)

    # ---- loading and bookkeeping ----
    def _load(self, entries: Iterable[CacheEntry]) -> None:
        now = self.clock()
        by_scope: dict[str, tuple[list[str], list[np.ndarray]]] = {}
        expired = []
        for e in sorted(entries, key=lambda e: e.last_used_at):
            if self._is_expired(e, now):
                expired.append(e.entry_id)
                continue
            self._entries[e.entry_id] = e
            self._lru[e.entry_id] = None
            ids, vecs = by_scope.setdefault(e.scope_key, ([], []))
            ids.append(e.entry_id)
            vecs.append(e.vector)
            e.vector = None
        for scope_key, (ids, vecs) in by_scope.items():
            index = self._indexes.setdefault(scope_key, VectorIndex(len(vecs[0])))
            index.add_many(ids, np.stack(vecs))
        if expired and self.backing is not None:
            self.backing.delete(expired)
        self.figures.expired += len(expired)
        self._evict_over_cap()

    def _is_expired(self, e: CacheEntry, now: float) -> bool:
        return self.config.ttl_s > 0 and now - e.created_at > self.config.ttl_s

    def _drop(self, entry_ids: Sequence[str]) -> None:
        for entry_id in entry_ids:
            e = self._entries.pop(entry_id, None)
            if e is None:
                continue
            self._lru.pop(entry_id, None)
            index = self._indexes[e.scope_key]
            index.remove(entry_id)
            if not len(index):
                del self._indexes[e.scope_key]
        if entry_ids and self.backing is not None:
            self.backing.delete(list(entry_ids))

    def _evict_over_cap(self) -> None:
        over = len(self._entries) - self.config.max_entries
        if over > 0:
            victims = [entry_id for entry_id, _ in zip(self._lru, range(over))]
            self._drop(victims)
            self.figures.evictions += len(victims)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> int:
        with self._lock:
            n = len(self._entries)
            self._entries.clear()
            self._indexes.clear()
            self._lru.clear()
            if self.backing is not None:
                self.backing.clear()
            return n

    # ---- the two calls around a request ----
    def lookup(self, prompt: Prompt, scope: CacheScope | None, *, vector: np.ndarray | None = None) -> Hit | None:
        """The stored answer for a prompt that means the same in this scope, else None."""
        return self.probe(prompt, scope, vector=vector).hit

    def probe(self, prompt: Prompt, scope: CacheScope | None, *, vector: np.ndarray | None = None) -> Probe:
        if scope is None:
            return Probe(None, None, None)
        t0 = time.perf_counter()
        text, _, _ = split_prompt(prompt)
        q = self.embed([text])[0] if vector is None else np.asarray(vector, np.float32)
        cfg = self.config
        with self._lock:
            now = self.clock()
            index = self._indexes.get(scope.key)
            found = [] if index is None else index.search(q, cfg.threshold - cfg.near_miss_band)
            probe = self._choose(text, found, now)
            probe.lookup_ms = (time.perf_counter() - t0) * 1e3
            self._count(probe)
        if self.backing is not None:
            h = probe.hit
            self.backing.record_lookup(LookupRecord(
                now, scope.key, scope.model, h is not None, probe.best_similarity, probe.refused_by,
                h.entry_id if h else None, probe.lookup_ms))
            if h is not None:
                self.backing.touch(h.entry_id, now, self._entries[h.entry_id].hits if h.entry_id in self._entries else 0)
        return probe

    def _choose(self, text: str, found: list[tuple[str, float]], now: float) -> Probe:
        cfg = self.config
        best = found[0][1] if found else None
        refused_by = None
        features = None
        expired = []
        for entry_id, sim in found:
            if sim < cfg.threshold:
                break
            e = self._entries[entry_id]
            if self._is_expired(e, now):
                expired.append(entry_id)
                continue
            if cfg.guards:
                if features is None:
                    features = prompt_features(text)
                if e.features is None:
                    e.features = prompt_features(e.prompt)
                reason = refusal(e.features, features)
                if reason is None and cfg.alignment_guard:
                    reason = self.alignment.refusal(e.prompt, text, sim)
                if reason is not None:
                    refused_by = refused_by or reason
                    continue
            e.hits += 1
            e.last_used_at = now
            self._lru.move_to_end(entry_id)
            audit = cfg.audit_rate > 0 and self._rng.random() < cfg.audit_rate
            hit = Hit(entry_id, e.answer, sim, e.prompt, e.created_at, e.scope_key, audit)
            self._drop(expired)
            self.figures.expired += len(expired)
            return Probe(hit, sim, None)
        self._drop(expired)
        self.figures.expired += len(expired)
        return Probe(None, best, refused_by)

    def _count(self, probe: Probe) -> None:
        f = self.figures
        f.lookups += 1
        f.lookup_ms.append(probe.lookup_ms)
        if probe.hit is not None:
            f.hits += 1
            return
        if probe.refused_by is not None:
            f.refusals[probe.refused_by] = f.refusals.get(probe.refused_by, 0) + 1
        if probe.best_similarity is not None:
            f.near_miss_distances.append(1.0 - probe.best_similarity)

    def store(self, prompt: Prompt, scope: CacheScope | None, answer: str, *, vector: np.ndarray | None = None,
              finish_reason: str = "stop", meta: dict[str, Any] | None = None) -> CacheEntry | None:
        """Keep a finished answer. Errors and cancelled answers are not kept."""
        if scope is None or finish_reason not in ("stop", "length") or not answer:
            return None
        text, _, _ = split_prompt(prompt)
        vec = self.embed([text])[0] if vector is None else np.asarray(vector, np.float32)
        now = self.clock()
        entry = CacheEntry(uuid.uuid4().hex[:16], scope.key, scope.model, text, answer, vec, now, now, 0,
                           dict(meta or {}, finish_reason=finish_reason))
        if self.backing is not None:
            self.backing.put(entry)
        with self._lock:
            self._entries[entry.entry_id] = entry
            self._lru[entry.entry_id] = None
            self._indexes.setdefault(scope.key, VectorIndex(len(vec))).add(entry.entry_id, vec)
            entry.vector = None
            self.figures.stores += 1
            self._evict_over_cap()
        return entry

    # ---- audit ----
    def record_audit(self, hit: Hit, fresh_answer: str, prompt: Prompt = "") -> AuditRecord:
        """For an audited hit: the answer generated anyway, compared with the cached one."""
        differed = _normalize_answer(fresh_answer) != _normalize_answer(hit.answer)
        answer_similarity = None
        if differed:
            a, b = self.embed([hit.answer, fresh_answer])
            answer_similarity = float(a @ b)
        text = split_prompt(prompt)[0] if prompt else ""
        record = AuditRecord(self.clock(), hit.entry_id, hit.similarity, differed, answer_similarity,
                             hit.cached_prompt, text, hit.answer, fresh_answer)
        with self._lock:
            self.figures.audits += 1
            self.figures.audit_differed += int(differed)
        if self.backing is not None:
            self.backing.record_audit(record)
        return record

    def answer(self, prompt: Prompt, scope: CacheScope | None, generate: Callable[[], str]) -> tuple[str, Hit | None]:
        """Lookup, else generate and store; an audited hit is generated anyway and the fresh
        answer served. Returns (answer, hit or None)."""
        hit = self.lookup(prompt, scope)
        if hit is not None and not hit.audit:
            return hit.answer, hit
        fresh = generate()
        if hit is not None:
            self.record_audit(hit, fresh, prompt)
        else:
            self.store(prompt, scope, fresh)
        return fresh, hit

    # ---- figures ----
    def stats(self) -> dict[str, Any]:
        """Plain figures for panels and JSON (same keys as sessions.cache_store.CacheStore.stats)."""
        with self._lock:
            f = self.figures
            near = list(f.near_miss_distances)
            ms = list(f.lookup_ms)
            return {
                "entries": len(self._entries),
                "scopes": len(self._indexes),
                "threshold": self.config.threshold,
                "lookups": f.lookups,
                "hits": f.hits,
                "hit_rate": f.hits / f.lookups if f.lookups else None,
                "skipped": f.skipped,
                "stores": f.stores,
                "evictions": f.evictions,
                "expired": f.expired,
                "refusals": {k: v for k, v in f.refusals.items() if v},
                "near_misses": len(near),
                "near_miss_p50_distance": statistics.median(near) if near else None,
                "near_miss_min_distance": min(near) if near else None,
                "p50_lookup_ms": statistics.median(ms) if ms else None,
                "audits": f.audits,
                "audit_differed": f.audit_differed,
                "audit_differ_rate": f.audit_differed / f.audits if f.audits else None,
            }
