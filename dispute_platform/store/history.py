"""The `historical_resolutions` table: past cases (seed history, CFPB imports, the platform's own
outcomes), the source of truth that Chroma indexes, with the model that embedded each row.

Pages are read by keyset (`case_id > last`, never OFFSET), so memory stays flat however long the
history grows. Every value is a bound parameter; the few SQL fragments below are fixed text.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from typing import Any, TypedDict, cast

from dispute_platform.domain.knowledge import HistoricalResolution
from dispute_platform.store.audit import jsonb
from dispute_platform.store.db import Cursor, Database

# --- writing --------------------------------------------------------------------------------


def upsert_historical(cur: Cursor, records: Sequence[HistoricalResolution]) -> int:
    """Insert or replace past resolutions (HistoricalResolution models); a changed record loses
    its embedding mark so the next embedding pass picks it up."""
    for record in records:
        cur.execute(
            """INSERT INTO historical_resolutions (case_id, dispute_type, source, record)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (case_id) DO UPDATE SET dispute_type = EXCLUDED.dispute_type, source = EXCLUDED.source,
                   record = EXCLUDED.record, updated_at = now(),
                   embedded_model = CASE WHEN historical_resolutions.record = EXCLUDED.record
                                         THEN historical_resolutions.embedded_model END""",
            (record.case_id, record.dispute_type, record.source, jsonb(record.model_dump(mode="json"))),
        )
    return len(records)


def mark_embedded(cur: Cursor, case_ids: Sequence[str], model_identity: str) -> None:
    cur.execute(
        "UPDATE historical_resolutions SET embedded_model = %s, embedded_at = now() WHERE case_id = ANY(%s)",
        (model_identity, list(case_ids)),
    )


def mark_embedded_versions(db: Database, case_ids: list[str], versions: list[Any], identity: str) -> int:
    """Mark rows as embedded by `identity`, but only the row versions that were read: a record
    replaced meanwhile keeps its stale mark and is picked up again."""

    def run(cur: Cursor) -> int:
        cur.execute(
            """UPDATE historical_resolutions h SET embedded_model = %s, embedded_at = now()
               FROM unnest(%s::text[], %s::timestamptz[]) AS u(case_id, updated_at)
               WHERE h.case_id = u.case_id AND h.updated_at = u.updated_at
                 AND h.embedded_model IS DISTINCT FROM %s""",
            (identity, case_ids, versions, identity),
        )
        return int(cur.rowcount)

    return db.transact(run)


# --- counting (cheap: the sensor, the doctor and progress bars use these) --------------------


class HistoricalCountRow(TypedDict):
    source: str
    dispute_type: str
    n: int


def historical_counts(cur: Cursor) -> list[HistoricalCountRow]:
    cur.execute(
        "SELECT source, dispute_type, COUNT(*) AS n FROM historical_resolutions GROUP BY source, dispute_type ORDER BY 1, 2"
    )
    return cast(list[HistoricalCountRow], cur.fetchall())


def bucket_counts(db: Database, buckets: Collection[int] | None = None, *, stale_for: str | None = None) -> dict[int, int]:
    """Rows per bucket; with `stale_for`, only rows not embedded by that model identity."""
    rows = db.fetch_all(
        """SELECT bucket, COUNT(*) AS n FROM historical_resolutions
           WHERE (%s::int[] IS NULL OR bucket = ANY(%s::int[]))
             AND (%s::text IS NULL OR embedded_model IS DISTINCT FROM %s::text)
           GROUP BY bucket""",
        (*(2 * [sorted(buckets) if buckets is not None else None]), stale_for, stale_for),
    )
    return {int(row["bucket"]): int(row["n"]) for row in rows}


def changed_model_counts(db: Database, identity: str) -> dict[int, int]:
    """Rows per bucket whose stored vector was made by another model (name or weights): what a
    model change leaves behind. Never-embedded rows are not counted; they are embedded on arrival."""
    rows = db.fetch_all(
        """SELECT bucket, COUNT(*) AS n FROM historical_resolutions
           WHERE embedded_model IS NOT NULL AND embedded_model <> %s GROUP BY bucket""",
        (identity,),
    )
    return {int(row["bucket"]): int(row["n"]) for row in rows}


def model_counts(db: Database) -> dict[str | None, int]:
    rows = db.fetch_all("SELECT embedded_model, COUNT(*) AS n FROM historical_resolutions GROUP BY embedded_model")
    return {row["embedded_model"]: int(row["n"]) for row in rows}


def embedding_progress(db: Database, identity: str) -> tuple[int, int]:
    """(rows embedded by `identity`, rows in all)."""
    row = db.fetch_one(
        "SELECT COUNT(*) AS total, COUNT(*) FILTER (WHERE embedded_model = %s) AS done FROM historical_resolutions",
        (identity,),
    )
    return (int(row["done"]), int(row["total"])) if row is not None else (0, 0)


def present_case_ids(db: Database, case_ids: list[str]) -> set[str]:
    """Which of these case ids have a row."""
    return {
        str(r["case_id"]) for r in db.fetch_all("SELECT case_id FROM historical_resolutions WHERE case_id = ANY(%s)", (case_ids,))
    }


# --- reading ------------------------------------------------------------------------------


class HistoryPageRow(TypedDict):
    case_id: str
    record: dict[str, Any]  # a HistoricalResolution as JSON
    updated_at: datetime  # the row version (mark_embedded_versions marks only the versions read)


def iter_bucket_pages(
    db: Database, bucket: int, *, page_size: int, stale_for: str | None = None
) -> Iterator[list[HistoryPageRow]]:
    """Pages of one bucket in case-id order; with `stale_for`, only rows that model has not embedded."""
    after = ""
    while True:
        rows = cast(
            list[HistoryPageRow],
            db.fetch_all(
                """SELECT case_id, record, updated_at FROM historical_resolutions
               WHERE bucket = %s AND case_id > %s AND (%s::text IS NULL OR embedded_model IS DISTINCT FROM %s::text)
               ORDER BY case_id LIMIT %s""",
                (bucket, after, stale_for, stale_for, page_size),
            ),
        )
        if not rows:
            return
        yield rows
        after = rows[-1]["case_id"]
        if len(rows) < page_size:
            return


def iter_history(db: Database, *, stale_for: str | None = None, page: int) -> Iterator[list[HistoricalResolution]]:
    """Pages of past cases in case-id order; with `stale_for`, only rows that model has not embedded."""
    after = ""
    while True:
        rows = db.fetch_all(
            """SELECT case_id, record FROM historical_resolutions
               WHERE case_id > %s AND (%s::text IS NULL OR embedded_model IS DISTINCT FROM %s::text)
               ORDER BY case_id LIMIT %s""",
            (after, stale_for, stale_for, page),
        )
        if not rows:
            return
        yield [HistoricalResolution.model_validate(row["record"]) for row in rows]
        after = rows[-1]["case_id"]
