"""Policies and past cases into Chroma. Postgres holds the past cases (historical_resolutions);
Chroma is an index over them that can be rebuilt at any time."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dispute_platform.domain.knowledge import HistoricalResolution
from dispute_platform.domain.policies import PolicyChunk, load_policy_chunks
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.store import repo
from dispute_platform.store.db import Database

SEED_HISTORY = Path(__file__).resolve().parent.parent / "data" / "historical_resolutions.jsonl"
EMBED_BATCH = 256


def load_policies(vectors: VectorStoreResource, directory: Path) -> list[PolicyChunk]:
    chunks = load_policy_chunks(directory)
    vectors.upsert_policy_chunks(chunks)
    return chunks


def read_seed_history(path: Path = SEED_HISTORY) -> list[HistoricalResolution]:
    with path.open(encoding="utf-8") as fh:
        return [HistoricalResolution.model_validate(json.loads(line)) for line in fh if line.strip()]


def load_seed_history(db: Database, path: Path = SEED_HISTORY) -> int:
    records = read_seed_history(path)
    return db.transact(lambda cur: repo.upsert_historical(cur, records))


def iter_history(db: Database, *, where: str = "TRUE", params: tuple = (), page: int = EMBED_BATCH) -> Iterator[list[HistoricalResolution]]:
    """Pages of past cases in case-id order (keyset pagination: memory stays flat however long
    the history grows). `where` is a fixed SQL fragment from this package, never user input."""
    after = ""
    while True:
        rows = db.fetch_all(
            f"SELECT case_id, record FROM historical_resolutions WHERE case_id > %s AND ({where}) ORDER BY case_id LIMIT %s",  # noqa: S608 - fixed fragments from this package; values are parameters
            (after, *params, page),
        )
        if not rows:
            return
        yield [HistoricalResolution.model_validate(row["record"]) for row in rows]
        after = rows[-1]["case_id"]


@dataclass
class EmbedStats:
    embedded: int = 0
    batches: int = 0


def embed_history(
    db: Database,
    vectors: VectorStoreResource,
    *,
    only_stale: bool = True,
    progress: Callable[[EmbedStats], None] | None = None,
) -> EmbedStats:
    """Embed past cases into Chroma, one batch at a time; with `only_stale`, only those not yet
    embedded by the current model (new, changed, or embedded by another model)."""
    identity = vectors.embedder.identity
    stats = EmbedStats()
    where, params = ("embedded_model IS DISTINCT FROM %s", (identity,)) if only_stale else ("TRUE", ())
    for batch in iter_history(db, where=where, params=params):
        vectors.upsert_resolutions(batch)
        db.transact(lambda cur, batch=batch: repo.mark_embedded(cur, [r.case_id for r in batch], identity))
        stats.embedded += len(batch)
        stats.batches += 1
        if progress:
            progress(stats)
    return stats
