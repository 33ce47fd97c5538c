"""Review desk sessions: sign-in with a reviewer token, lookup by cookie, sign-out, expiry.

The session id is a random secret given to the browser once (as an HTTP-only cookie); only its
SHA-256 is stored. The CSRF token is per session and goes into every form the desk renders.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from dispute_platform.store.db import Cursor, Row


@dataclass(frozen=True)
class DeskReviewer:
    """Who is signed in: the reviewers row."""

    id: int
    name: str


@dataclass(frozen=True)
class NewSession:
    session_id: str  # the cookie value: shown to the browser once, never stored
    csrf_token: str
    reviewer: DeskReviewer
    expires_at: datetime


@dataclass(frozen=True)
class SessionLookup:
    state: Literal["active", "expired", "ended", "unknown", "disabled"]
    reviewer: DeskReviewer | None = None
    csrf_token: str | None = None

    @property
    def active(self) -> bool:
        return self.state == "active"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def reviewer_for_token(cur: Cursor, token: str) -> DeskReviewer | None:
    """The active person a bearer token names (never a platform lane such as auto-policy)."""
    from dispute_platform.store.reviewers import reviewer_for_token as lookup

    found = lookup(cur, token)
    return DeskReviewer(found.id, found.name) if found else None


def open_session(cur: Cursor, reviewer: DeskReviewer, ttl_hours: float) -> NewSession:
    session_id = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    cur.execute(
        """INSERT INTO desk_sessions (session_sha256, reviewer_id, csrf_token, expires_at)
           VALUES (%s, %s, %s, now() + make_interval(secs => %s)) RETURNING expires_at""",
        (_digest(session_id), reviewer.id, csrf_token, ttl_hours * 3600),
    )
    return NewSession(session_id, csrf_token, reviewer, cast(Row, cur.fetchone())["expires_at"])  # INSERT ... RETURNING


def lookup_session(cur: Cursor, session_id: str) -> SessionLookup:
    cur.execute(
        """SELECT s.id, s.csrf_token, s.ended_at, s.expires_at <= now() AS expired,
                  r.id AS reviewer_id, r.name AS reviewer_name, r.disabled_at
           FROM desk_sessions s JOIN reviewers r ON r.id = s.reviewer_id
           WHERE s.session_sha256 = %s""",
        (_digest(session_id),),
    )
    row = cur.fetchone()
    if row is None:
        return SessionLookup("unknown")
    if row["ended_at"] is not None:
        return SessionLookup("ended")
    if row["expired"]:
        return SessionLookup("expired")
    if row["disabled_at"] is not None:
        return SessionLookup("disabled")
    cur.execute("UPDATE desk_sessions SET last_seen_at = now() WHERE id = %s", (row["id"],))
    return SessionLookup("active", DeskReviewer(row["reviewer_id"], row["reviewer_name"]), row["csrf_token"])


def end_session(cur: Cursor, session_id: str) -> bool:
    cur.execute(
        "UPDATE desk_sessions SET ended_at = now() WHERE session_sha256 = %s AND ended_at IS NULL",
        (_digest(session_id),),
    )
    return cur.rowcount == 1


def purge_old_sessions(cur: Cursor, older_than_days: int = 30) -> int:
    """Forget sessions that ended or expired long ago (called at sign-in, so the table stays small)."""
    cur.execute(
        "DELETE FROM desk_sessions WHERE COALESCE(ended_at, expires_at) < now() - make_interval(days => %s)",
        (older_than_days,),
    )
    return cur.rowcount
