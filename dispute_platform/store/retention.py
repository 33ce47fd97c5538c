"""SQL of the archive pass: which settled disputes still hold a partition, marking them archived
under their lock (rechecking their state), clearing the mark when a case comes back, and the
`archive_passes` record. Nothing here deletes a platform row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TypedDict, cast

from psycopg2.extras import execute_values

from dispute_platform.domain.retention import SettledDispute
from dispute_platform.domain.states import FINAL
from dispute_platform.store.audit import audit, jsonb
from dispute_platform.store.db import Cursor
from dispute_platform.store.rows import ArchivePassRow
from dispute_platform.store.transitions import lock_case

_FINAL = sorted(s.value for s in FINAL)


def settled_unarchived(cur: Cursor) -> list[SettledDispute]:
    """Disputes in a final status that still hold their partition, with when they settled (the
    completion time, or the last change for statuses that never complete)."""
    cur.execute(
        """SELECT case_id, status, COALESCE(completed_at, updated_at) AS settled_at FROM workflow_states
           WHERE archived_at IS NULL AND status = ANY(%s)""",
        (_FINAL,),
    )
    return [SettledDispute(r["case_id"], r["status"], r["settled_at"]) for r in cur.fetchall()]


def final_but_awaiting_run(cur: Cursor) -> set[str]:
    """Final-status disputes that still wait for a Dagster run: a rejection stays `rejected` until
    its review run records the no-op and embeds the outcome (the review sensor's query)."""
    cur.execute(
        """SELECT w.case_id FROM workflow_states w WHERE w.archived_at IS NULL AND w.status = 'rejected'
             AND EXISTS (SELECT 1 FROM review_decisions x
                         WHERE x.case_id = w.case_id AND x.proposal_version = w.proposal_version)"""
    )
    return {r["case_id"] for r in cur.fetchall()}


def mark_archived(cur: Cursor, case_ids: Sequence[str], pass_id: int | None) -> list[str]:
    """Mark the disputes archived, each under its lock and only if it is still settled and not
    archived: a dispute that moved (a re-run, a re-opened case) while the pass ran is left alone.
    Returns the case ids marked now; each gets an audit row.

    Three statements for the whole batch: the case locks taken in one sorted order (every pass
    takes them so: two passes never deadlock; held to the end of the transaction, as a writer's
    single lock is), the guarded update, and the audit rows."""
    ordered = sorted(set(case_ids))
    if not ordered:
        return []
    cur.execute(
        "SELECT pg_advisory_xact_lock(hashtext('case:' || k)) FROM unnest(%s::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
        (ordered,),
    )
    cur.execute(
        """UPDATE workflow_states SET archived_at = now()
           WHERE case_id = ANY(%s) AND archived_at IS NULL AND status = ANY(%s) RETURNING case_id, status""",
        (ordered, _FINAL),
    )
    marked = sorted((r["case_id"], r["status"]) for r in cur.fetchall())
    execute_values(
        cur,
        "INSERT INTO audit_log (case_id, step, event, actor, details) VALUES %s",
        [
            (case_id, "retention", "partition_archived", "system", jsonb({"status": status, "archive_pass": pass_id}))
            for case_id, status in marked
        ],
        page_size=1_000,
    )
    return [case_id for case_id, _ in marked]


def unarchive(cur: Cursor, case_id: str, reason: str, details: dict[str, object] | None = None) -> bool:
    """Clear the archived mark (a new event arrived for the case): audited; the SQS sensor gives
    the key back. Returns whether the dispute was archived."""
    lock_case(cur, case_id)
    cur.execute(
        "UPDATE workflow_states SET archived_at = NULL WHERE case_id = %s AND archived_at IS NOT NULL RETURNING case_id",
        (case_id,),
    )
    if cur.fetchone() is None:
        return False
    audit(cur, case_id, "retention", "partition_restored", {"reason": reason, **(details or {})})
    return True


def not_archived(cur: Cursor, case_ids: Sequence[str]) -> list[str]:
    """Of these case ids, those whose row is no longer archived (re-opened while the pass ran)."""
    cur.execute(
        "SELECT case_id FROM workflow_states WHERE case_id = ANY(%s) AND archived_at IS NULL ORDER BY case_id",
        (list(case_ids),),
    )
    return [r["case_id"] for r in cur.fetchall()]


def archived_among(cur: Cursor, case_ids: Sequence[str]) -> list[str]:
    """Of these case ids (keys still in the partition set), those already marked archived."""
    cur.execute(
        "SELECT case_id FROM workflow_states WHERE case_id = ANY(%s) AND archived_at IS NOT NULL ORDER BY case_id",
        (list(case_ids),),
    )
    return [r["case_id"] for r in cur.fetchall()]


class ArchivedCountsRow(TypedDict):
    disputes: int
    archived: int


def archived_counts(cur: Cursor) -> ArchivedCountsRow:
    cur.execute("SELECT COUNT(*) AS disputes, COUNT(archived_at) AS archived FROM workflow_states")
    row = cur.fetchone()
    assert row is not None
    return cast(ArchivedCountsRow, row)


# --- archive_passes --------------------------------------------------------------------------


@dataclass
class PassFigures:
    partitions_before: int = 0
    selected: int = 0
    archived: int = 0
    skipped_changed: int = 0
    keys_deleted: int = 0
    keys_restored: int = 0
    runs_deleted: int = 0
    event_rows_removed: int = 0
    partitions_after: int | None = None
    error: str | None = None


def start_pass(cur: Cursor, trigger: str, retention_days: int, retention_max: int) -> int:
    cur.execute(
        "INSERT INTO archive_passes (trigger, retention_days, retention_max) VALUES (%s, %s, %s) RETURNING id",
        (trigger, retention_days, retention_max),
    )
    row = cur.fetchone()
    assert row is not None
    return int(row["id"])


def record_pass(cur: Cursor, pass_id: int, figures: PassFigures, *, finished: bool) -> None:
    values = asdict(figures)
    assignments = ", ".join(f"{name} = %({name})s" for name in values)
    cur.execute(
        f"UPDATE archive_passes SET {assignments}{', finished_at = now()' if finished else ''} WHERE id = %(id)s",  # noqa: S608 - column names are PassFigures fields
        {**values, "id": pass_id},
    )


def recent_passes(cur: Cursor, limit: int = 10) -> list[ArchivePassRow]:
    cur.execute("SELECT * FROM archive_passes ORDER BY id DESC LIMIT %s", (limit,))
    return cast(list[ArchivePassRow], cur.fetchall())
