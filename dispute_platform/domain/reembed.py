"""Re-embedding the past cases as a backfill over hash buckets of the case id. Pure functions.

The history is cut into `BUCKETS` buckets by a hash of the case id, computed the same way here and
in Postgres (`historical_resolutions.bucket`, migration 005): the first byte of md5(case id) modulo
64. A bucket is one partition of the `resolution_index` asset, so a backfill re-embeds the history
bucket by bucket, several buckets per run, and a bucket's content does not depend on how the
buckets were grouped into runs: one run or many give the same vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from dispute_platform.domain.knowledge import HistoricalResolution

BUCKETS = 64
_PREFIX = "b"


def bucket_of(case_id: str) -> int:
    """The bucket of a case id; equals Postgres' get_byte(decode(md5(case_id), 'hex'), 0) % 64."""
    return hashlib.md5(case_id.encode("utf-8"), usedforsecurity=False).digest()[0] % BUCKETS


def bucket_key(bucket: int) -> str:
    if not 0 <= bucket < BUCKETS:
        raise ValueError(f"bucket must be 0..{BUCKETS - 1}, not {bucket}")
    return f"{_PREFIX}{bucket:02d}"


def bucket_index(key: str) -> int:
    """`b07` -> 7; anything else is not a bucket partition key."""
    if len(key) != 3 or not key.startswith(_PREFIX) or not key[1:].isdigit() or int(key[1:]) >= BUCKETS:
        raise ValueError(f"{key!r} is not a bucket partition key (b00..b{BUCKETS - 1:02d})")
    return int(key[1:])


BUCKET_KEYS: list[str] = [bucket_key(b) for b in range(BUCKETS)]


# --- batches -----------------------------------------------------------------------------------

ChromaMetadata = dict[str, str | float | int | bool]  # what HistoricalResolution.metadata() gives

BATCH_SCHEMA: dict[str, pl.DataType | pl.datatypes.DataTypeClass] = {
    "case_id": pl.String,
    "text": pl.String,
    "document": pl.String,
    "metadata": pl.Object,
    "updated_at": pl.Datetime("us", "UTC"),
}


def batch_frame(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """One page of `historical_resolutions` rows (case_id, record, updated_at) as what goes into
    Chroma: the id, the text to encode, the document, the flat metadata, and the row version the
    vector answers.

    Text, document and metadata come from `HistoricalResolution`, the same code every other
    writer of the collection uses, so a re-embedded entry is identical to one written on arrival."""
    records = [HistoricalResolution.model_validate(row["record"]) for row in rows]
    return pl.DataFrame(
        {
            "case_id": [r.case_id for r in records],
            "text": [r.embedding_text() for r in records],
            "document": [r.document() for r in records],
            "metadata": [r.metadata() for r in records],
            "updated_at": [row["updated_at"] for row in rows],
        },
        schema=BATCH_SCHEMA,
    )


def chroma_payload(frame: pl.DataFrame, model_identity: str) -> tuple[list[str], list[str], list[ChromaMetadata], list[str]]:
    """ids, documents, metadatas (every vector carries the model that made it) and the texts to
    encode, for one upsert."""
    metadatas = [dict(m) | {"model": model_identity} for m in frame["metadata"].to_list()]
    return frame["case_id"].to_list(), frame["document"].to_list(), metadatas, frame["text"].to_list()


# --- progress and figures --------------------------------------------------------------------


@dataclass(frozen=True)
class BucketResult:
    """What re-embedding one bucket did."""

    bucket: str
    rows: int  # rows in the bucket when the run started
    embedded: int  # rows encoded and written now
    pruned: int
    seconds: float
    model: str

    @property
    def rows_per_second(self) -> float:
        return round(self.embedded / self.seconds, 1) if self.seconds > 0 else 0.0


def results_frame(results: Iterable[BucketResult]) -> pl.DataFrame:
    rows = [
        {"bucket": r.bucket, "rows": r.rows, "embedded": r.embedded, "pruned": r.pruned, "seconds": round(r.seconds, 3),
         "rows_per_s": r.rows_per_second}
        for r in results
    ]  # fmt: skip
    schema = {
        "bucket": pl.String,
        "rows": pl.Int64,
        "embedded": pl.Int64,
        "pruned": pl.Int64,
        "seconds": pl.Float64,
        "rows_per_s": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def run_summary(frame: pl.DataFrame) -> dict[str, float | int]:
    """Totals of a run over several buckets: rows, seconds and the overall rate."""
    embedded = int(frame["embedded"].sum()) if frame.height else 0
    seconds = float(frame["seconds"].sum()) if frame.height else 0.0
    return {
        "buckets": frame.height,
        "rows": int(frame["rows"].sum()) if frame.height else 0,
        "embedded": embedded,
        "pruned": int(frame["pruned"].sum()) if frame.height else 0,
        "seconds": round(seconds, 3),
        "rows_per_s": round(embedded / seconds, 1) if seconds > 0 else 0.0,
    }


def markdown_table(frame: pl.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns)
    body = "\n".join("| " + " | ".join(str(v) for v in row) + " |" for row in frame.iter_rows())
    return head + ("\n" + body if body else "")


# --- which runs to request -----------------------------------------------------------------


@dataclass(frozen=True)
class BucketRange:
    """A run's share of a backfill: consecutive bucket keys, first and last inclusive."""

    start: str
    end: str
    rows: int

    @property
    def keys(self) -> list[str]:
        return BUCKET_KEYS[bucket_index(self.start) : bucket_index(self.end) + 1]


def run_ranges(counts: Mapping[int, int], per_run: int) -> list[BucketRange]:
    """Cut the buckets that have work (`counts`: bucket -> rows to embed, > 0) into runs of at
    most `per_run` consecutive buckets. A run carries a range, so a gap (a bucket with nothing to
    do) ends a run early rather than re-embedding a bucket nobody asked for."""
    if per_run < 1:
        raise ValueError("per_run must be at least 1")
    wanted = sorted(b for b, n in counts.items() if n > 0)
    ranges: list[BucketRange] = []
    chunk: list[int] = []
    for b in wanted:
        if chunk and (b != chunk[-1] + 1 or len(chunk) == per_run):
            ranges.append(BucketRange(bucket_key(chunk[0]), bucket_key(chunk[-1]), sum(counts[c] for c in chunk)))
            chunk = []
        chunk.append(b)
    if chunk:
        ranges.append(BucketRange(bucket_key(chunk[0]), bucket_key(chunk[-1]), sum(counts[c] for c in chunk)))
    return ranges


def all_buckets(per_run: int) -> list[BucketRange]:
    """Every bucket, `per_run` at a time (the weekly full re-embedding)."""
    return run_ranges({b: 1 for b in range(BUCKETS)}, per_run)


def stale_fingerprint(counts: Mapping[int, int]) -> str:
    """A short digest of which buckets hold how many stale rows: a sensor asks once per state."""
    text = ",".join(f"{b}:{n}" for b, n in sorted(counts.items()) if n > 0)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
