"""Policies and past cases into Chroma. Postgres holds the past cases (historical_resolutions);
Chroma is an index over them that can be rebuilt at any time."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dispute_platform.domain.knowledge import HistoricalResolution
from dispute_platform.domain.policies import PolicyChunk, load_policy_chunks
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.store import history
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
    return db.transact(lambda cur: history.upsert_historical(cur, records))


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
    for batch in history.iter_history(db, stale_for=identity if only_stale else None, page=EMBED_BATCH):
        vectors.upsert_resolutions(batch)
        db.transact(lambda cur, batch=batch: history.mark_embedded(cur, [r.case_id for r in batch], identity))
        stats.embedded += len(batch)
        stats.batches += 1
        if progress:
            progress(stats)
    return stats
