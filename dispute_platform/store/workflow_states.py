"""The `workflow_states` table, one row per dispute: its workflow id, opening the row at intake,
reading it, and the review queue read from it. Status changes go through store/transitions.py
(the state machine), cost totals through store/costs.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import TypedDict, cast

from dispute_platform.domain.models import DisputeEvent
from dispute_platform.store.db import Cursor
from dispute_platform.store.rows import WorkflowStateRow

# Fixed namespace: a case's workflow id (run_id) is the same on every machine and every retry.
WORKFLOW_NAMESPACE = uuid.UUID("5f1b7c1e-6a53-4c8e-9d0b-2f1f0e0d5a11")


def workflow_run_id(case_id: str) -> str:
    return str(uuid.uuid5(WORKFLOW_NAMESPACE, case_id))


def open_workflow(cur: Cursor, event: DisputeEvent) -> bool:
    """Open the dispute's row at `received` (intake). False when the case already had one."""
    cur.execute(
        """INSERT INTO workflow_states (run_id, case_id, customer_id, status, current_step, dispute_type,
                                        disputed_amount, currency)
           VALUES (%s, %s, %s, 'received', 'intake', %s, %s, %s) ON CONFLICT (case_id) DO NOTHING RETURNING id""",
        (workflow_run_id(event.case_id), event.case_id, event.customer_id, event.dispute_type, event.amount, event.currency),
    )
    return cur.fetchone() is not None


def workflow_state(cur: Cursor, case_id: str) -> WorkflowStateRow | None:
    cur.execute("SELECT * FROM workflow_states WHERE case_id = %s", (case_id,))
    return cast(WorkflowStateRow | None, cur.fetchone())


def workflow_states(cur: Cursor, case_ids: Iterable[str]) -> dict[str, WorkflowStateRow]:
    cur.execute("SELECT * FROM workflow_states WHERE case_id = ANY(%s)", (list(case_ids),))
    return {row["case_id"]: row for row in cast(list[WorkflowStateRow], cur.fetchall())}


def status_counts(cur: Cursor) -> dict[str, int]:
    cur.execute("SELECT status, COUNT(*) AS n FROM workflow_states GROUP BY status")
    return {row["status"]: row["n"] for row in cur.fetchall()}


def case_for_run_id(cur: Cursor, run_id: str) -> str | None:
    cur.execute("SELECT case_id FROM workflow_states WHERE run_id::text = %s", (run_id.lower(),))
    row = cur.fetchone()
    return row["case_id"] if row else None


# --- review queue ---------------------------------------------------------------------------


class OverdueReviewRow(TypedDict):
    case_id: str
    proposal_version: int
    created_at: datetime  # when the proposal waiting for review was made


def overdue_reviews(cur: Cursor, older_than_hours: float) -> list[OverdueReviewRow]:
    cur.execute(
        """SELECT w.case_id, w.proposal_version, p.created_at FROM workflow_states w
           JOIN proposals p ON p.case_id = w.case_id AND p.version = w.proposal_version
           WHERE w.status IN ('pending_review', 'model_failed') AND p.created_at < now() - make_interval(secs => %s)
           ORDER BY p.created_at""",
        (older_than_hours * 3600,),
    )
    return cast(list[OverdueReviewRow], cur.fetchall())


class WaitingReviewRow(TypedDict):
    """A dispute waiting for a reviewer (workflow_states columns) with its current proposal's:
    what the review queue's reads share (pending_reviews here, desk.review_queue)."""

    case_id: str
    status: str
    dispute_type: str | None
    segment: str | None
    disputed_amount: Decimal | None
    currency: str | None
    version: int
    action: str
    amount: Decimal
    confidence: float
    flags: list[str]
    provider: str
    created_at: datetime
    age_hours: Decimal


class PendingReviewRow(WaitingReviewRow):
    run_id: str


def pending_reviews(cur: Cursor) -> list[PendingReviewRow]:
    cur.execute(
        """SELECT w.case_id, w.run_id, w.status, w.dispute_type, w.segment, w.disputed_amount, w.currency,
                  p.version, p.action, p.amount, p.confidence, p.flags, p.provider, p.created_at,
                  EXTRACT(EPOCH FROM now() - p.created_at) / 3600.0 AS age_hours
           FROM workflow_states w JOIN proposals p ON p.case_id = w.case_id AND p.version = w.proposal_version
           WHERE w.status IN ('pending_review', 'model_failed', 'review_escalated', 'awaiting_second_review')
           ORDER BY p.created_at, w.case_id"""
    )
    return cast(list[PendingReviewRow], cur.fetchall())
