"""Dispute actions beyond the review itself: auto-approvals by the policy lane and the verdicts
people give on them after the fact (sql/007, append-only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, cast

from dispute_platform.store.audit import jsonb
from dispute_platform.store.db import Cursor, Row
from dispute_platform.store.rows import DisputeActionRow


def record_action(
    cur: Cursor,
    *,
    case_id: str,
    version: int,
    kind: str,
    reviewer_id: int,
    decision_id: int | None = None,
    sampled: bool = False,
    details: dict[str, Any] | None = None,
) -> int:
    cur.execute(
        """INSERT INTO dispute_actions (case_id, proposal_version, kind, reviewer_id, decision_id, sampled, details)
           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (case_id, version, kind, reviewer_id, decision_id, sampled, jsonb(details or {})),
    )
    return int(cast(Row, cur.fetchone())["id"])  # INSERT ... RETURNING: always a row


class AutoApprovalRow(DisputeActionRow):
    """An auto_approved dispute action with its after-the-fact verdict (None: not reviewed yet)."""

    verdict: str | None  # post_review_upheld | post_review_reversed
    verdict_at: datetime | None
    verdict_by: str | None  # the reviewer's name


def auto_approval(cur: Cursor, case_id: str) -> AutoApprovalRow | None:
    """The dispute's latest auto-approval, with its after-the-fact verdict if one was given."""
    cur.execute(
        """SELECT a.*, v.kind AS verdict, v.created_at AS verdict_at, r.name AS verdict_by
           FROM dispute_actions a
           LEFT JOIN dispute_actions v ON v.case_id = a.case_id AND v.proposal_version = a.proposal_version
                                      AND v.kind IN ('post_review_upheld', 'post_review_reversed')
           LEFT JOIN reviewers r ON r.id = v.reviewer_id
           WHERE a.case_id = %s AND a.kind = 'auto_approved' ORDER BY a.id DESC LIMIT 1""",
        (case_id,),
    )
    return cast(AutoApprovalRow | None, cur.fetchone())


class SampledApprovalRow(TypedDict):
    case_id: str
    proposal_version: int
    details: dict[str, Any]
    created_at: datetime
    status: str  # the dispute's, from workflow_states
    final_resolution: dict[str, Any] | None


def sampled_awaiting_review(cur: Cursor, limit: int = 500) -> list[SampledApprovalRow]:
    """Auto-approvals sampled for a person's look that nobody has reviewed yet, oldest first."""
    cur.execute(
        """SELECT a.case_id, a.proposal_version, a.details, a.created_at, w.status, w.final_resolution
           FROM dispute_actions a JOIN workflow_states w ON w.case_id = a.case_id
           WHERE a.kind = 'auto_approved' AND a.sampled
             AND NOT EXISTS (SELECT 1 FROM dispute_actions v WHERE v.case_id = a.case_id
                             AND v.proposal_version = a.proposal_version
                             AND v.kind IN ('post_review_upheld', 'post_review_reversed'))
           ORDER BY a.created_at LIMIT %s""",
        (limit,),
    )
    return cast(list[SampledApprovalRow], cur.fetchall())
