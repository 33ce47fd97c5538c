"""What the review desk reads beyond repo's queries: the queue with customers and SLA due times,
and the past cases a proposal cites."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, cast

from dispute_platform.store.db import Cursor
from dispute_platform.store.workflow_states import WaitingReviewRow

QueueSort = Literal["age", "amount", "sla"]

# Whitelisted ORDER BY clauses: the sort key comes from a query string, so it never reaches SQL.
_ORDER = {
    ("age", "desc"): "p.created_at ASC, w.case_id",  # oldest first = most aged first
    ("age", "asc"): "p.created_at DESC, w.case_id",
    ("amount", "desc"): "p.amount DESC, p.created_at ASC, w.case_id",
    ("amount", "asc"): "p.amount ASC, p.created_at ASC, w.case_id",
    # Escalated (SLA passed) first, then the nearest due time.
    ("sla", "asc"): "(w.status = 'review_escalated') DESC, sla_due_at ASC, w.case_id",
    ("sla", "desc"): "(w.status = 'review_escalated') ASC, sla_due_at DESC, w.case_id",
}


class ReviewQueueRow(WaitingReviewRow):
    """A dispute waiting for a reviewer, its current proposal, its customer, its SLA and the
    decisions so far."""

    customer_id: str | None
    customer_name: str | None
    sla_due_at: datetime
    sla_hours_left: Decimal
    decisions: int


def review_queue(cur: Cursor, *, sla_hours: float, sort: QueueSort = "sla", order: str = "asc") -> list[ReviewQueueRow]:
    """Disputes waiting for a reviewer, with their current proposal and SLA due time."""
    clause = _ORDER.get((sort, order)) or _ORDER[("sla", "asc")]
    cur.execute(
        f"""SELECT w.case_id, w.status, w.dispute_type, w.segment, w.disputed_amount, w.currency,
                   w.customer_id, w.crm_data -> 'account' ->> 'name' AS customer_name,
                   p.version, p.action, p.amount, p.confidence, p.flags, p.provider, p.created_at,
                   EXTRACT(EPOCH FROM now() - p.created_at) / 3600.0 AS age_hours,
                   p.created_at + make_interval(secs => %s) AS sla_due_at,
                   EXTRACT(EPOCH FROM p.created_at + make_interval(secs => %s) - now()) / 3600.0 AS sla_hours_left,
                   (SELECT COUNT(*) FROM review_decisions d
                     WHERE d.case_id = w.case_id AND d.proposal_version = p.version) AS decisions
            FROM workflow_states w JOIN proposals p ON p.case_id = w.case_id AND p.version = w.proposal_version
            WHERE w.status IN ('pending_review', 'model_failed', 'review_escalated', 'awaiting_second_review')
            ORDER BY {clause}""",  # noqa: S608 - clause picked from the fixed _ORDER table
        (sla_hours * 3600, sla_hours * 3600),
    )
    return cast(list[ReviewQueueRow], cur.fetchall())


def past_cases(cur: Cursor, case_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The stored records (HistoricalResolution JSON) of past cases, by case id."""
    if not case_ids:
        return {}
    cur.execute("SELECT case_id, record FROM historical_resolutions WHERE case_id = ANY(%s)", (list(case_ids),))
    return {row["case_id"]: row["record"] for row in cur.fetchall()}
