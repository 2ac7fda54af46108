"""The semantic cache's entries, lookups and audits in DuckDB: implements the engine's
`CacheBacking` (load all / put / delete / touch) and answers `workbench cache stats`."""
from __future__ import annotations

import json
import statistics
from typing import Any, Iterable, Sequence

import numpy as np

from engine.cache.semantic_cache import AuditRecord, CacheEntry, LookupRecord
from sessions.recorder import insert_many
from sessions.schema import MIGRATIONS
from sessions.store import Store

ENTRY_COLUMNS = ("id", "scope_key", "model", "prompt", "answer", "embedding", "dim",
                 "created_unix", "last_used_unix", "hits", "meta")
_CACHE_MIGRATION = next(sql for version, _, sql in MIGRATIONS if version == 3)


class CacheStore:
    """One Store's cache tables. Safe from any thread: each call takes that thread's cursor."""

    def __init__(self, store: Store):
        self.store = store
        if not store.read_only:
            self._ensure_tables()

    def _ensure_tables(self) -> None:
        # A file migrated past 3 before the cache's migration existed lacks the tables;
        # the DDL is idempotent, so create them here rather than fail on first use.
        have = self.store.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'semantic_cache_entries'"
        ).fetchone()[0]
        if not have:
            self.store.cursor().execute(_CACHE_MIGRATION)

    # ---- CacheBacking ----
    def load_entries(self) -> Iterable[CacheEntry]:
        rows = self.store.execute(f"SELECT {', '.join(ENTRY_COLUMNS)} FROM semantic_cache_entries").fetchall()
        for (entry_id, scope_key, model, prompt, answer, blob, dim, created, last_used, hits, meta) in rows:
            vec = np.frombuffer(blob, dtype=np.float32)
            if vec.shape[0] != dim:
                continue  # a torn row is not worth a crash; it will be re-cached
            yield CacheEntry(entry_id, scope_key, model, prompt, answer, vec, created, last_used, hits,
                             json.loads(meta) if meta else {})

    def put(self, entry: CacheEntry) -> None:
        vec = np.ascontiguousarray(entry.vector, dtype=np.float32)
        self.store.execute(
            f"INSERT OR REPLACE INTO semantic_cache_entries ({', '.join(ENTRY_COLUMNS)}) VALUES ({', '.join('?' * len(ENTRY_COLUMNS))})",
            [entry.entry_id, entry.scope_key, entry.model, entry.prompt, entry.answer, vec.tobytes(), int(vec.shape[0]),
             entry.created_at, entry.last_used_at, entry.hits, json.dumps(entry.meta)],
        )

    def put_many(self, entries: Sequence[CacheEntry]) -> None:
        rows = []
        for e in entries:
            vec = np.ascontiguousarray(e.vector, dtype=np.float32)
            rows.append((e.entry_id, e.scope_key, e.model, e.prompt, e.answer, vec.tobytes(), int(vec.shape[0]),
                         e.created_at, e.last_used_at, e.hits, json.dumps(e.meta)))
        insert_many(self.store.cursor(), "semantic_cache_entries", ENTRY_COLUMNS, rows)

    def delete(self, entry_ids: Sequence[str]) -> None:
        ids = list(entry_ids)
        for i in range(0, len(ids), 1000):
            part = ids[i : i + 1000]
            self.store.execute(f"DELETE FROM semantic_cache_entries WHERE id IN ({', '.join('?' * len(part))})", part)

    def touch(self, entry_id: str, last_used_at: float, hits: int) -> None:
        self.store.execute("UPDATE semantic_cache_entries SET last_used_unix = ?, hits = ? WHERE id = ?",
                           [last_used_at, hits, entry_id])

    def clear(self, model: str | None = None) -> int:
        where, params = ("WHERE model = ?", [model]) if model else ("", [])
        n = self.store.execute(f"SELECT count(*) FROM semantic_cache_entries {where}", params).fetchone()[0]
        self.store.execute(f"DELETE FROM semantic_cache_entries {where}", params)
        return int(n)

    def record_lookup(self, r: LookupRecord) -> None:
        self.store.execute(
            "INSERT INTO semantic_cache_lookups VALUES (?,?,?,?,?,?,?,?)",
            [r.t, r.scope_key, r.model, r.hit, r.similarity, r.refused_by, r.entry_id, r.lookup_ms],
        )

    def record_audit(self, r: AuditRecord) -> None:
        self.store.execute(
            "INSERT INTO semantic_cache_audits VALUES (?,?,?,?,?,?,?,?,?)",
            [r.t, r.entry_id, r.similarity, r.differed, r.answer_similarity, r.cached_prompt, r.prompt,
             r.cached_answer, r.fresh_answer],
        )

    # ---- figures for `workbench cache stats` (same keys as SemanticCache.stats) ----
    def stats(self, threshold: float | None = None, near_miss_band: float = 0.1) -> dict[str, Any]:
        q = self.store.execute
        entries, scopes, models = q(
            "SELECT count(*), count(DISTINCT scope_key), count(DISTINCT model) FROM semantic_cache_entries").fetchone()
        lookups, hits = q("SELECT count(*), count(*) FILTER (WHERE hit) FROM semantic_cache_lookups").fetchone()
        refusals = dict(q("""SELECT refused_by, count(*) FROM semantic_cache_lookups
                             WHERE refused_by IS NOT NULL GROUP BY ALL ORDER BY 2 DESC""").fetchall())
        near = [1.0 - s for (s,) in q("SELECT similarity FROM semantic_cache_lookups WHERE NOT hit AND similarity IS NOT NULL").fetchall()]
        ms = [m for (m,) in q("SELECT lookup_ms FROM semantic_cache_lookups ORDER BY t DESC LIMIT 1000").fetchall()]
        audits, differed = q("SELECT count(*), count(*) FILTER (WHERE differed) FROM semantic_cache_audits").fetchone()
        by_model = [dict(zip(("model", "entries", "hits"), row)) for row in q(
            "SELECT model, count(*), sum(hits) FROM semantic_cache_entries GROUP BY ALL ORDER BY 2 DESC").fetchall()]
        return {
            "entries": int(entries),
            "scopes": int(scopes),
            "models": int(models),
            "threshold": threshold,
            "lookups": int(lookups),
            "hits": int(hits),
            "hit_rate": hits / lookups if lookups else None,
            "refusals": {k: int(v) for k, v in refusals.items()},
            "near_misses": len(near),
            "near_miss_p50_distance": statistics.median(near) if near else None,
            "near_miss_min_distance": min(near) if near else None,
            "p50_lookup_ms": statistics.median(ms) if ms else None,
            "audits": int(audits),
            "audit_differed": int(differed),
            "audit_differ_rate": differed / audits if audits else None,
            "by_model": by_model,
        }
