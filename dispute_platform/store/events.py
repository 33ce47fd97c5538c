"""Intake's tables: `dispute_events` (every accepted SQS event) and `rejected_events` (bodies
that could not become events), and what the SQS sensor reads of them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from dispute_platform.domain.models import DisputeEvent
from dispute_platform.store.audit import audit, jsonb
from dispute_platform.store.db import Cursor
from dispute_platform.store.retention import unarchive
from dispute_platform.store.rows import EventRow
from dispute_platform.store.workflow_states import open_workflow


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
        first = open_workflow(cur, event)
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


def first_event(cur: Cursor, case_id: str) -> EventRow | None:
    cur.execute("SELECT * FROM dispute_events WHERE case_id = %s ORDER BY id LIMIT 1", (case_id,))
    return cast(EventRow | None, cur.fetchone())


def events_for(cur: Cursor, case_ids: Sequence[str]) -> dict[str, EventRow]:
    """Each case's first event."""
    cur.execute(
        "SELECT DISTINCT ON (case_id) * FROM dispute_events WHERE case_id = ANY(%s) ORDER BY case_id, id",
        (list(case_ids),),
    )
    return {row["case_id"]: row for row in cast(list[EventRow], cur.fetchall())}
