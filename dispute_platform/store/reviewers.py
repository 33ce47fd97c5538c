"""Reviewers, their decisions and their launchpad tickets.

A decision references a reviewer record (never a free-text name); names are unique whatever
their case; a revoked reviewer's token and tickets stop working at once. Tokens and tickets are
stored as SHA-256 digests only.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict, cast

from dispute_platform.store.audit import jsonb
from dispute_platform.store.db import Cursor, Row
from dispute_platform.store.rows import ReviewDecisionRow, ReviewerRow


@dataclass(frozen=True)
class Reviewer:
    id: int
    name: str
    email: str | None = None
    kind: str = "person"  # person | system (a lane such as auto-policy, never a token holder)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _reviewer(row: Row | None) -> Reviewer | None:
    return Reviewer(row["id"], row["name"], row.get("email"), row.get("kind", "person")) if row else None


def add_reviewer(cur: Cursor, name: str, token: str, email: str | None = None, *, kind: str = "person") -> Reviewer:
    """Create a reviewer; a name taken in any case raises psycopg2.errors.UniqueViolation."""
    cur.execute(
        "INSERT INTO reviewers (name, email, token_sha256, kind) VALUES (%s, %s, %s, %s) RETURNING id, name, email, kind",
        (name, email, token_digest(token), kind),
    )
    reviewer = _reviewer(cur.fetchone())
    assert reviewer is not None
    return reviewer


def system_reviewer(cur: Cursor, name: str) -> Reviewer:
    """The record a lane decides under (e.g. auto-policy): created once, holds no usable token."""
    cur.execute("SELECT id, name, email, kind FROM reviewers WHERE lower(name) = lower(%s)", (name,))
    found = _reviewer(cur.fetchone())
    if found is not None:
        if found.kind != "system":
            raise ValueError(f"{name!r} is a person's reviewer record, not a system lane")
        return found
    return add_reviewer(cur, name, secrets.token_hex(32), None, kind="system")


def reviewer_for_token(cur: Cursor, token: str) -> Reviewer | None:
    cur.execute(
        "SELECT id, name, email, kind FROM reviewers WHERE token_sha256 = %s AND disabled_at IS NULL AND kind = 'person'",
        (token_digest(token),),
    )
    return _reviewer(cur.fetchone())


def reviewer_by_name(cur: Cursor, name: str) -> ReviewerRow | None:
    cur.execute("SELECT * FROM reviewers WHERE lower(name) = lower(%s)", (name,))
    return cast(ReviewerRow | None, cur.fetchone())


class ReviewerListRow(TypedDict):
    """A reviewer (no token digest) and how many decisions they recorded."""

    id: int
    name: str
    email: str | None
    kind: str
    created_at: datetime
    disabled_at: datetime | None
    token_rotated_at: datetime | None
    decisions: int


def list_reviewers(cur: Cursor) -> list[ReviewerListRow]:
    cur.execute(
        """SELECT r.id, r.name, r.email, r.kind, r.created_at, r.disabled_at, r.token_rotated_at,
                  (SELECT COUNT(*) FROM review_decisions d WHERE d.reviewer_id = r.id) AS decisions
           FROM reviewers r ORDER BY lower(r.name)"""
    )
    return cast(list[ReviewerListRow], cur.fetchall())


def revoke_reviewer(cur: Cursor, name: str) -> bool:
    """Disable the reviewer's token and burn their unused tickets. False when no such reviewer."""
    cur.execute(
        "UPDATE reviewers SET disabled_at = COALESCE(disabled_at, now()) WHERE lower(name) = lower(%s) RETURNING id",
        (name,),
    )
    return _burn_unused_tickets(cur, cur.fetchone(), "revoked")


def rotate_token(cur: Cursor, name: str, new_token: str) -> bool:
    """Replace the reviewer's token (the old one stops at once) and burn their unused tickets."""
    cur.execute(
        """UPDATE reviewers SET token_sha256 = %s, token_rotated_at = now()
           WHERE lower(name) = lower(%s) AND kind = 'person' RETURNING id""",
        (token_digest(new_token), name),
    )
    return _burn_unused_tickets(cur, cur.fetchone(), "rotated")


def _burn_unused_tickets(cur: Cursor, reviewer_row: Row | None, why: str) -> bool:
    """After a revoke or a rotation, the reviewer's unused tickets stop too. False: no such reviewer."""
    if reviewer_row is None:
        return False
    cur.execute("UPDATE decision_tickets SET used_at = now(), used_by_run = %s WHERE reviewer_id = %s AND used_at IS NULL",
                (why, reviewer_row["id"]))  # fmt: skip
    return True


# --- decisions ----------------------------------------------------------------------------------


class DecisionSummaryRow(TypedDict):
    decision: str
    reviewer: str
    effective_action: str
    effective_amount: Decimal


def decision_of(cur: Cursor, case_id: str, decision_id: int) -> DecisionSummaryRow | None:
    """One recorded decision of this dispute (None if the id belongs to another dispute)."""
    cur.execute(
        "SELECT decision, reviewer, effective_action, effective_amount FROM review_decisions WHERE id = %s AND case_id = %s",
        (decision_id, case_id),
    )
    return cast(DecisionSummaryRow | None, cur.fetchone())


def decisions_for(cur: Cursor, case_id: str, version: int | None = None) -> list[ReviewDecisionRow]:
    if version is None:
        cur.execute("SELECT * FROM review_decisions WHERE case_id = %s ORDER BY id", (case_id,))
    else:
        cur.execute("SELECT * FROM review_decisions WHERE case_id = %s AND proposal_version = %s ORDER BY id", (case_id, version))
    return cast(list[ReviewDecisionRow], cur.fetchall())


def insert_decision(
    cur: Cursor,
    *,
    case_id: str,
    version: int,
    decision: str,
    reviewer: Reviewer,
    comments: str,
    modified: dict[str, Any] | None,
    effective_action: str,
    effective_amount: Decimal,
    source: str,
) -> int:
    cur.execute(
        """INSERT INTO review_decisions (case_id, proposal_version, decision, reviewer, reviewer_id, comments,
                                         modified_resolution, effective_action, effective_amount, source)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (case_id, version, decision, reviewer.name, reviewer.id, comments, jsonb(modified) if modified else None,
         effective_action, effective_amount, source),
    )  # fmt: skip
    return int(cast(Row, cur.fetchone())["id"])  # INSERT ... RETURNING: always a row


class AwaitingExecutionRow(TypedDict):
    case_id: str
    status: str
    proposal_version: int
    decision_id: int  # the latest decision on the current proposal version


def decided_awaiting_execution(cur: Cursor, limit: int = 1000) -> list[AwaitingExecutionRow]:
    """Disputes whose current proposal has a final decision that no review run has carried out
    yet, found by their state (never by an id cursor: a decision that commits late is still
    found). The decision id makes each run key unique per decision."""
    cur.execute(
        """SELECT w.case_id, w.status, w.proposal_version, d.id AS decision_id
           FROM workflow_states w
           JOIN LATERAL (SELECT id FROM review_decisions x
                         WHERE x.case_id = w.case_id AND x.proposal_version = w.proposal_version
                         ORDER BY id DESC LIMIT 1) d ON true
           WHERE w.status IN ('decided', 'rejected')
           ORDER BY w.updated_at, w.case_id LIMIT %s""",
        (limit,),
    )
    return cast(list[AwaitingExecutionRow], cur.fetchall())


# --- launchpad tickets --------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedTicket:
    ticket: str  # shown once; only its digest is stored
    case_id: str
    proposal_version: int
    expires_at: datetime


@dataclass(frozen=True)
class TicketUse:
    reviewer: Reviewer
    case_id: str
    proposal_version: int
    expired: bool
    revoked: bool


def issue_ticket(cur: Cursor, reviewer: Reviewer, case_id: str, version: int, ttl_seconds: int, via: str) -> IssuedTicket:
    ticket = "dt_" + secrets.token_urlsafe(32)
    cur.execute(
        """INSERT INTO decision_tickets (ticket_sha256, reviewer_id, case_id, proposal_version, issued_via, expires_at)
           VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s)) RETURNING expires_at""",
        (token_digest(ticket), reviewer.id, case_id, version, via, ttl_seconds),
    )
    return IssuedTicket(ticket, case_id, version, cast(Row, cur.fetchone())["expires_at"])  # INSERT ... RETURNING


def consume_ticket(cur: Cursor, ticket: str, run_id: str | None) -> TicketUse | None:
    """Burn a ticket (whatever happens next, it never works again). None when it is unknown or
    was used before; otherwise what it was issued for, and whether it had expired or its reviewer
    was revoked since (the caller refuses those)."""
    cur.execute(
        """UPDATE decision_tickets t SET used_at = now(), used_by_run = %s
           FROM reviewers r
           WHERE t.ticket_sha256 = %s AND t.used_at IS NULL AND r.id = t.reviewer_id
           RETURNING t.case_id, t.proposal_version, t.expires_at <= now() AS expired,
                     r.id, r.name, r.email, r.kind, r.disabled_at IS NOT NULL AS revoked""",
        (run_id or "unknown", token_digest(ticket)),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return TicketUse(Reviewer(row["id"], row["name"], row["email"], row["kind"]), row["case_id"], row["proposal_version"],
                     row["expired"], row["revoked"])  # fmt: skip
