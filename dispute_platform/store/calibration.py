"""SQL of proposal calibration (sql/010_calibration.sql): the fitted calibrations, the version of
the history they were fitted on, and the reviewed proposals a fit learns from. Kept apart from the
money path's modules (proposals, reviewers, executions)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg2.extras import Json

from dispute_platform.store.db import Cursor, Row

# Decisions recorded by automation, not by a person: learning from them would let the platform
# confirm itself.
AUTOMATED_REVIEWERS = ("auto-policy",)


def history_version(cur: Cursor) -> tuple[str, int]:
    """(digest, count) of historical_resolutions: it changes whenever a past case is added,
    changed or removed (count and newest update together; a delete lowers the count)."""
    cur.execute(
        "SELECT COUNT(*) AS n, MAX(updated_at) AS last, COALESCE(SUM(hashtext(case_id)::bigint), 0) AS ids FROM historical_resolutions"
    )
    row = cast(Row, cur.fetchone())  # an aggregate: always a row
    text = f"{row['n']}|{row['last'].isoformat() if row['last'] else ''}|{row['ids']}"
    return hashlib.sha256(text.encode()).hexdigest()[:16], int(row["n"])


def history_counts(cur: Cursor) -> dict[str, int]:
    """Past cases, and those with a money-back or a no-money outcome (the vote's base rate)."""
    cur.execute(
        """SELECT COUNT(*) AS cases,
                  COUNT(*) FILTER (WHERE record->>'action' IN ('full_refund', 'partial_refund', 'credit')) AS money_back,
                  COUNT(*) FILTER (WHERE record->>'action' IN ('full_refund', 'partial_refund', 'credit', 'deny')) AS decided
             FROM historical_resolutions"""
    )
    return {k: int(v) for k, v in cast(Row, cur.fetchone()).items()}  # an aggregate: always a row


def save_calibration(
    cur: Cursor, calibration: dict[str, Any], *, history_version: str, history_cases: int, held_back: int, run_id: str | None
) -> int:
    cur.execute(
        """INSERT INTO proposal_calibrations (calibration_id, history_version, history_cases, held_back, calibration, dagster_run_id)
           VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
        (calibration["calibration_id"], history_version, history_cases, held_back, Json(calibration), run_id),
    )
    return int(cast(Row, cur.fetchone())["id"])  # INSERT ... RETURNING: always a row


class CalibrationRow(TypedDict):
    calibration: dict[str, Any]  # a domain.calibration fit as JSON
    history_version: str
    fitted_at: datetime


def latest_calibration(cur: Cursor) -> CalibrationRow | None:
    cur.execute(
        "SELECT calibration, history_version, fitted_at FROM proposal_calibrations ORDER BY fitted_at DESC, id DESC LIMIT 1"
    )
    return cast(CalibrationRow | None, cur.fetchone())


class ReviewedProposalRow(TypedDict):
    basis: str | None  # the proposal's `basis` field (absent in old proposals)
    action: str
    raw_confidence: float
    decision: str  # the first person's


def reviewed_proposals(cur: Cursor, limit: int = 20000) -> list[ReviewedProposalRow]:
    """Reviewed proposals (at most `limit`), one row per reviewed version with the first person's
    decision: the proposal's basis, action and raw confidence, and the decision."""
    cur.execute(
        """SELECT DISTINCT ON (p.case_id, p.version)
                  p.proposal->>'basis' AS basis, p.action,
                  COALESCE((p.proposal->>'raw_confidence')::float8, p.confidence::float8) AS raw_confidence,
                  d.decision
             FROM proposals p
             JOIN review_decisions d ON d.case_id = p.case_id AND d.proposal_version = p.version
             JOIN reviewers r ON r.id = d.reviewer_id
            WHERE r.kind = 'person' AND r.name <> ALL(%s)
            ORDER BY p.case_id, p.version, d.created_at, d.id
            LIMIT %s""",
        (list(AUTOMATED_REVIEWERS), limit),
    )
    return cast(list[ReviewedProposalRow], cur.fetchall())
