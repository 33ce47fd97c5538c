"""Every SQL statement the platform runs, as small functions over a cursor.

Parameterized throughout (psycopg2 binds values; nothing from a dispute is ever formatted into
SQL). Functions take a cursor so callers choose the transaction boundary.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dispute_platform.domain.models import DisputeEvent
from dispute_platform.store.audit import audit, audit_trail, jsonb  # noqa: F401 - re-exported
from dispute_platform.store.db import Cursor, Row
from dispute_platform.store.retention import unarchive

# Fixed namespace: a case's workflow id (run_id) is the same on every machine and every retry.
WORKFLOW_NAMESPACE = uuid.UUID("5f1b7c1e-6a53-4c8e-9d0b-2f1f0e0d5a11")


def workflow_run_id(case_id: str) -> str:
    return str(uuid.uuid5(WORKFLOW_NAMESPACE, case_id))


# --- intake --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcceptedEvent:
    event: DisputeEvent
    body: dict[str, Any]
    message_id: str | None
    source_queue: str | None


@dataclass(frozen=True)
class RejectedBody:
    body: str
    raw: bytes
    reason: str
    message_id: str | None
    source_queue: str | None
    dead_lettered: bool = False


def record_accepted(cur: Cursor, accepted: Sequence[AcceptedEvent]) -> list[str]:
    """Store events idempotently; open a workflow row for each case seen for the first time.
    Returns the case ids of events stored now (redeliveries return nothing)."""
    stored: list[str] = []
    for item in accepted:
        event = item.event
        cur.execute(
            """INSERT INTO dispute_events (case_id, event_id, customer_id, body, message_id, source_queue)
               VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (case_id, event_id) DO NOTHING RETURNING id""",
            (
                event.case_id,
                event.effective_event_id(),
                event.customer_id,
                jsonb(item.body),
                item.message_id,
                item.source_queue,
            ),
        )
        if cur.fetchone() is None:
            continue
        stored.append(event.case_id)
        cur.execute(
            """INSERT INTO workflow_states (run_id, case_id, customer_id, status, current_step, dispute_type,
                                            disputed_amount, currency)
               VALUES (%s, %s, %s, 'received', 'intake', %s, %s, %s) ON CONFLICT (case_id) DO NOTHING RETURNING id""",
            (workflow_run_id(event.case_id), event.case_id, event.customer_id, event.dispute_type, event.amount, event.currency),
        )
        first = cur.fetchone() is not None
        audit(
            cur,
            event.case_id,
            "intake",
            "event_received" if first else "event_received_for_known_case",
            {"event_id": event.effective_event_id(), "message_id": item.message_id},
        )
        if not first:
            # A case that comes back gets its partition again (the SQS sensor re-adds the key).
            unarchive(cur, event.case_id, "new event", {"event_id": event.effective_event_id()})
    return stored


def escape_nul(text: str) -> str:
    # Postgres text cannot hold NUL; keep it visible instead of losing the rest of the body.
    return text.replace("\x00", "\\u0000")


def record_rejected(cur: Cursor, rejected: Sequence[RejectedBody]) -> int:
    count = 0
    for item in rejected:
        cur.execute(
            """INSERT INTO rejected_events (body, body_sha256, body_bytes, reason, message_id, source_queue, dead_lettered)
               VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (body_sha256, message_id) DO NOTHING RETURNING id""",
            (
                escape_nul(item.body),
                hashlib.sha256(item.raw).hexdigest(),
                len(item.raw),
                item.reason,
                item.message_id,
                item.source_queue,
                item.dead_lettered,
            ),
        )
        count += cur.fetchone() is not None
    return count


@dataclass(frozen=True)
class NewDispute:
    case_id: str
    first_event_id: int


def new_disputes_after(cur: Cursor, cursor: int, limit: int) -> list[NewDispute]:
    """Cases whose first event arrived after `cursor` (a dispute_events id), oldest first.
    Later events for an already known case do not start a second workflow."""
    # Only the events after the cursor are read (the id index), each case checked for an earlier
    # event through the (case_id, event_id) index: the tick's cost follows what arrived, not the
    # history (a GROUP BY over every event grew with it: 1.0 s at 0, 2.4 s at 100,000 disputes).
    cur.execute(
        """SELECT e.case_id, MIN(e.id) AS first_id FROM dispute_events e
           WHERE e.id > %s
             AND NOT EXISTS (SELECT 1 FROM dispute_events p WHERE p.case_id = e.case_id AND p.id <= %s)
           GROUP BY e.case_id ORDER BY MIN(e.id) LIMIT %s""",
        (cursor, cursor, limit),
    )
    return [NewDispute(row["case_id"], row["first_id"]) for row in cur.fetchall()]


@dataclass(frozen=True)
class ReturningDispute:
    case_id: str
    event_id: int


def returning_disputes_between(cur: Cursor, after: int, upto: int) -> list[ReturningDispute]:
    """Known cases (first event at or before `after`) with a new event in (`after`, `upto`]:
    the SQS sensor gives back the partition of any that was archived."""
    cur.execute(
        """SELECT e.case_id, MAX(e.id) AS last_id FROM dispute_events e
           WHERE e.id > %s AND e.id <= %s
             AND EXISTS (SELECT 1 FROM dispute_events p WHERE p.case_id = e.case_id AND p.id <= %s)
           GROUP BY e.case_id ORDER BY MAX(e.id)""",
        (after, upto, after),
    )
    return [ReturningDispute(row["case_id"], row["last_id"]) for row in cur.fetchall()]


def last_event_id(cur: Cursor) -> int:
    cur.execute("SELECT COALESCE(MAX(id), 0) AS last_id FROM dispute_events")
    row = cur.fetchone()
    return int(row["last_id"]) if row else 0


def first_event(cur: Cursor, case_id: str) -> Row | None:
    cur.execute("SELECT * FROM dispute_events WHERE case_id = %s ORDER BY id LIMIT 1", (case_id,))
    return cur.fetchone()


def events_for(cur: Cursor, case_ids: Sequence[str]) -> dict[str, Row]:
    cur.execute(
        "SELECT DISTINCT ON (case_id) * FROM dispute_events WHERE case_id = ANY(%s) ORDER BY case_id, id",
        (list(case_ids),),
    )
    return {row["case_id"]: row for row in cur.fetchall()}


# --- workflow state ------------------------------------------------------------------------


def workflow_state(cur: Cursor, case_id: str) -> Row | None:
    cur.execute("SELECT * FROM workflow_states WHERE case_id = %s", (case_id,))
    return cur.fetchone()


def workflow_states(cur: Cursor, case_ids: Iterable[str]) -> dict[str, Row]:
    cur.execute("SELECT * FROM workflow_states WHERE case_id = ANY(%s)", (list(case_ids),))
    return {row["case_id"]: row for row in cur.fetchall()}


def add_cost(cur: Cursor, case_id: str, item: str, amount: Decimal, *, llm: bool = False) -> None:
    """Add to a dispute's cost totals and its per-service breakdown."""
    cur.execute(
        """UPDATE workflow_states SET
             llm_cost = llm_cost + %s,
             total_cost = total_cost + %s,
             cost_breakdown = jsonb_set(cost_breakdown, ARRAY[%s],
                 to_jsonb(COALESCE((cost_breakdown ->> %s)::numeric, 0) + %s), true),
             updated_at = now()
           WHERE case_id = %s""",
        (amount if llm else 0, amount, item, item, amount, case_id),
    )


def status_counts(cur: Cursor) -> dict[str, int]:
    cur.execute("SELECT status, COUNT(*) AS n FROM workflow_states GROUP BY status")
    return {row["status"]: row["n"] for row in cur.fetchall()}


# --- proposals -----------------------------------------------------------------------------


def latest_proposal(cur: Cursor, case_id: str) -> Row | None:
    cur.execute("SELECT * FROM proposals WHERE case_id = %s ORDER BY version DESC LIMIT 1", (case_id,))
    return cur.fetchone()


def latest_proposals(cur: Cursor, case_ids: Sequence[str]) -> dict[str, Row]:
    cur.execute(
        "SELECT DISTINCT ON (case_id) * FROM proposals WHERE case_id = ANY(%s) ORDER BY case_id, version DESC",
        (list(case_ids),),
    )
    return {row["case_id"]: row for row in cur.fetchall()}


def set_proposal_status(cur: Cursor, case_id: str, version: int, status: str) -> None:
    cur.execute("UPDATE proposals SET status = %s WHERE case_id = %s AND version = %s", (status, case_id, version))


def record_check(
    cur: Cursor, case_id: str, version: int, name: str, passed: bool, figure: Decimal, cap: Decimal, run_id: str | None
) -> None:
    cur.execute(
        """INSERT INTO check_results (case_id, proposal_version, check_name, passed, figure, cap, dagster_run_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (case_id, proposal_version, check_name) DO UPDATE
             SET passed = EXCLUDED.passed, figure = EXCLUDED.figure, cap = EXCLUDED.cap,
                 dagster_run_id = EXCLUDED.dagster_run_id, evaluated_at = now()""",
        (case_id, version, name, passed, figure, cap, run_id),
    )


def check_results(cur: Cursor, case_id: str, version: int) -> dict[str, Row]:
    cur.execute("SELECT * FROM check_results WHERE case_id = %s AND proposal_version = %s", (case_id, version))
    return {row["check_name"]: row for row in cur.fetchall()}


def cache_get(cur: Cursor, key: str) -> dict[str, Any] | None:
    cur.execute("UPDATE proposal_cache SET hits = hits + 1 WHERE cache_key = %s RETURNING reply", (key,))
    row = cur.fetchone()
    return row["reply"] if row else None


def cache_put(cur: Cursor, key: str, case_id: str, dispute_type: str, model: str, reply: dict[str, Any]) -> None:
    cur.execute(
        """INSERT INTO proposal_cache (cache_key, case_id, dispute_type, model, reply) VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (cache_key) DO NOTHING""",
        (key, case_id, dispute_type, model, jsonb(reply)),
    )


def cache_invalidate_type(cur: Cursor, dispute_type: str) -> int:
    cur.execute("DELETE FROM proposal_cache WHERE dispute_type = %s", (dispute_type,))
    return cur.rowcount


# --- review queue ---------------------------------------------------------------------------


def overdue_reviews(cur: Cursor, older_than_hours: float) -> list[Row]:
    cur.execute(
        """SELECT w.case_id, w.proposal_version, p.created_at FROM workflow_states w
           JOIN proposals p ON p.case_id = w.case_id AND p.version = w.proposal_version
           WHERE w.status IN ('pending_review', 'model_failed') AND p.created_at < now() - make_interval(secs => %s)
           ORDER BY p.created_at""",
        (older_than_hours * 3600,),
    )
    return cur.fetchall()


def pending_reviews(cur: Cursor) -> list[Row]:
    cur.execute(
        """SELECT w.case_id, w.run_id, w.status, w.dispute_type, w.segment, w.disputed_amount, w.currency,
                  p.version, p.action, p.amount, p.confidence, p.flags, p.provider, p.created_at,
                  EXTRACT(EPOCH FROM now() - p.created_at) / 3600.0 AS age_hours
           FROM workflow_states w JOIN proposals p ON p.case_id = w.case_id AND p.version = w.proposal_version
           WHERE w.status IN ('pending_review', 'model_failed', 'review_escalated', 'awaiting_second_review')
           ORDER BY p.created_at, w.case_id"""
    )
    return cur.fetchall()


def case_for_run_id(cur: Cursor, run_id: str) -> str | None:
    cur.execute("SELECT case_id FROM workflow_states WHERE run_id::text = %s", (run_id.lower(),))
    row = cur.fetchone()
    return row["case_id"] if row else None
