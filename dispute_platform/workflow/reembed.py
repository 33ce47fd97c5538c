"""Re-embed past cases bucket by bucket: Postgres pages in, Chroma upserts out.

Memory stays flat however long the history grows: a bucket is read in keyset pages of
`page_size` rows, and at most one page is encoded while the previous one is written (the encoder
and the Chroma/Postgres writes overlap, so the backfill runs at nearly the encoder's speed).

Re-running changes nothing: the ids are the case ids, the documents and metadata come from the
same `HistoricalResolution` code, the vectors from the same model over the same pages; a row is
marked with the model identity only if it did not change while it was being embedded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from dispute_platform.domain.reembed import BucketResult, batch_frame, bucket_key, bucket_of, chroma_payload
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.store.db import Database
from dispute_platform.store.history import bucket_counts, iter_bucket_pages, mark_embedded_versions, present_case_ids

log = logging.getLogger(__name__)
# Page-by-page progress at DEBUG: below workflow.log's level, picked up by a CLI that shows a bar.
PROGRESS = logging.getLogger("dispute_platform.progress")

PAGE_SIZE = 256
_CHROMA_ID_PAGE = 5000


def prune_orphans(db: Database, vectors: VectorStoreResource, buckets: Collection[int]) -> dict[int, int]:
    """Delete Chroma entries of these buckets whose case is gone from Postgres (the source of
    truth). Reads Chroma ids only, a page at a time."""
    coll = vectors.collection(vectors.resolutions_collection)
    wanted = set(buckets)
    orphans: list[str] = []
    offset = 0
    while True:
        ids = coll.get(include=[], limit=_CHROMA_ID_PAGE, offset=offset)["ids"]
        if not ids:
            break
        offset += len(ids)
        mine = [i for i in ids if bucket_of(i) in wanted]
        if mine:
            present = present_case_ids(db, mine)
            orphans += [i for i in mine if i not in present]
    pruned: dict[int, int] = {}
    for start in range(0, len(orphans), _CHROMA_ID_PAGE):
        coll.delete(ids=orphans[start : start + _CHROMA_ID_PAGE])
    for case_id in orphans:
        pruned[bucket_of(case_id)] = pruned.get(bucket_of(case_id), 0) + 1
    return pruned


@dataclass(frozen=True)
class PageProgress:
    bucket: str
    done: int  # rows of this bucket written so far
    total: int  # rows of this bucket to write
    seconds: float  # since the bucket started


def reembed_bucket(
    db: Database,
    vectors: VectorStoreResource,
    bucket: int,
    *,
    only_stale: bool = False,
    page_size: int = PAGE_SIZE,
    total: int | None = None,
    pruned: int = 0,
    on_page: Callable[[PageProgress], None] | None = None,
) -> BucketResult:
    """Encode every row of a bucket (or, with `only_stale`, those not embedded by the current
    model) and upsert them into Chroma, one page at a time."""
    embedder = vectors.embedder
    identity = embedder.identity
    coll = vectors.collection(vectors.resolutions_collection)
    key = bucket_key(bucket)
    stale_for = identity if only_stale else None
    if total is None:
        total = bucket_counts(db, [bucket], stale_for=stale_for).get(bucket, 0)
    started = time.perf_counter()
    done = 0

    def report(done: int) -> None:
        progress = PageProgress(key, done, max(total, done), time.perf_counter() - started)
        if PROGRESS.isEnabledFor(logging.DEBUG):
            PROGRESS.debug("%s: %d/%d rows", key, progress.done, progress.total, extra={"progress": progress})
        if on_page:
            on_page(progress)

    def write(ids: list[str], documents: list[str], metadatas: list[dict], embeddings: list, versions: list) -> int:
        coll.upsert(ids=ids, documents=documents, embeddings=embeddings, metadatas=metadatas)
        mark_embedded_versions(db, ids, versions, identity)
        return len(ids)

    # One writer thread: page n is written while page n+1 is encoded (torch and Chroma's core both
    # release the GIL). At most one write is pending, so memory holds about three pages.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"reembed-{key}") as writer:
        pending: Future[int] | None = None
        for rows in iter_bucket_pages(db, bucket, page_size=page_size, stale_for=stale_for):
            frame = batch_frame(rows)
            ids, documents, metadatas, texts = chroma_payload(frame, identity)
            embeddings = embedder.encode(texts)
            if pending is not None:
                done += pending.result()
                report(done)
            pending = writer.submit(write, ids, documents, metadatas, embeddings, frame["updated_at"].to_list())
        if pending is not None:
            done += pending.result()
    seconds = time.perf_counter() - started
    if done:
        report(done)
    return BucketResult(bucket=key, rows=max(total, done), embedded=done, pruned=pruned, seconds=seconds, model=identity)


# --- the configured model's identity, fresh ------------------------------------------------

_FINGERPRINTS: dict[tuple, str] = {}


def current_model_identity(embedding_model: str | None) -> str:
    """The identity (`name@weights`) the configured model has now, as `Embedder.identity` would
    compute it in a new process, without loading the model. Long-lived processes (the sensor's
    code server) call this: the weights are hashed again only when a weight file's size or mtime
    changed, so a model replaced in place is noticed at the next tick."""
    from pathlib import Path

    from dispute_platform.resources.vectors import PACKAGED_MODEL_NAME, _weights_fingerprint, packaged_model_path

    ref = embedding_model or packaged_model_path()
    name = PACKAGED_MODEL_NAME if embedding_model is None else Path(embedding_model).name or embedding_model
    path = Path(ref)
    if not path.is_dir():
        import hashlib

        return f"{name}@{hashlib.sha256(ref.encode()).hexdigest()[:16]}"
    files = sorted(p for p in path.rglob("*") if p.suffix in (".safetensors", ".bin", ".onnx") and p.is_file())
    signature = (str(path.resolve()), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if signature not in _FINGERPRINTS:
        _FINGERPRINTS[signature] = _weights_fingerprint(path)
    return f"{name}@{_FINGERPRINTS[signature]}"
