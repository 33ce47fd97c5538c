"""Saving a proposal version: one transaction under the dispute's lock, and only while the
dispute may still take a proposal. A batch that read the dispute before a reviewer decided
cannot put a new version over the decision (or over an executed dispute)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict, cast

from dispute_platform.domain.states import Status
from dispute_platform.store.audit import jsonb
from dispute_platform.store.db import Cursor, Row
from dispute_platform.store.rows import ProposalRow
from dispute_platform.store.transitions import lock_case, transition


def save_proposal(
    cur: Cursor,
    case_id: str,
    proposal: dict[str, Any],
    *,
    status: Status,
    allowed_from: Iterable[Status],
    reason: str | None,
    run_id: str | None,
) -> int | None:
    """Store a new proposal version and move the dispute to `status` (pending_review or blocked);
    earlier undecided versions are superseded. Returns the version, or None (nothing written but
    an audit row) when the dispute is no longer in `allowed_from`."""
    lock_case(cur, case_id)
    cur.execute("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM proposals WHERE case_id = %s", (case_id,))
    version: int = cast(Row, cur.fetchone())["v"]  # an aggregate: always a row
    moved = transition(
        cur, case_id, status, "ai_proposal", reason, allowed_from=allowed_from, run_id=run_id,
        resolution_proposal=proposal | {"version": version}, proposal_version=version,
    )  # fmt: skip
    if not moved:
        return None
    cur.execute(
        "UPDATE proposals SET status = 'superseded' WHERE case_id = %s AND status IN ('pending_review', 'model_failed', 'blocked')",
        (case_id,),
    )
    cur.execute(
        """INSERT INTO proposals (case_id, version, status, proposal, action, amount, currency, confidence, provider,
                                  model, prompt_version, input_tokens, output_tokens, cost_usd, cache_hit, latency_ms,
                                  flags, dagster_run_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            case_id, version, status.value, jsonb(proposal), proposal["action"], proposal["amount"], proposal["currency"],
            proposal["confidence"], proposal["provider"], proposal["model"], proposal["prompt_version"],
            proposal["input_tokens"], proposal["output_tokens"], proposal["cost_usd"], proposal["cache_hit"],
            proposal["latency_ms"], jsonb(proposal["flags"]), run_id,
        ),
    )  # fmt: skip
    return version


def latest_proposal(cur: Cursor, case_id: str) -> ProposalRow | None:
    cur.execute("SELECT * FROM proposals WHERE case_id = %s ORDER BY version DESC LIMIT 1", (case_id,))
    return cast(ProposalRow | None, cur.fetchone())


def latest_proposals(cur: Cursor, case_ids: Sequence[str]) -> dict[str, ProposalRow]:
    cur.execute(
        "SELECT DISTINCT ON (case_id) * FROM proposals WHERE case_id = ANY(%s) ORDER BY case_id, version DESC",
        (list(case_ids),),
    )
    return {row["case_id"]: row for row in cast(list[ProposalRow], cur.fetchall())}


def set_proposal_status(cur: Cursor, case_id: str, version: int, status: str) -> None:
    cur.execute("UPDATE proposals SET status = %s WHERE case_id = %s AND version = %s", (status, case_id, version))


class TokenTotalsRow(TypedDict):
    case_id: str
    input_tokens: int
    output_tokens: int
    proposals: int
    cache_hits: int


def token_totals(cur: Cursor, case_ids: list[str]) -> dict[str, TokenTotalsRow]:
    """Per dispute: tokens in and out over all its proposals, how many proposals, how many from the cache."""
    cur.execute(
        """SELECT case_id, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, COUNT(*) AS proposals,
                  SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END) AS cache_hits
           FROM proposals WHERE case_id = ANY(%s) GROUP BY case_id""",
        (case_ids,),
    )
    return {str(row["case_id"]): row for row in cast(list[TokenTotalsRow], cur.fetchall())}


class ProposalCallRow(TypedDict):
    """One proposal (one model call, or a cache hit) with its dispute's type, segment and status."""

    case_id: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    cache_hit: bool
    created_at: datetime
    requests: int
    estimated_cost_usd: Decimal
    dispute_type: str | None
    segment: str | None
    status: str


def calls_since(cur: Cursor, since: datetime | None) -> list[ProposalCallRow]:
    """One row per proposal created at or after `since`, with its dispute's type, segment and status:
    what the cost report is computed from."""
    cur.execute(
        """SELECT p.case_id, p.model, p.input_tokens, p.output_tokens, p.cost_usd, p.cache_hit, p.created_at,
                  -- Requests the provider may bill (a re-ask and a timed-out attempt are requests too); a
                  -- reply from the cache made none. Proposals from before the field: one.
                  CASE WHEN p.cache_hit THEN 0 ELSE COALESCE((p.proposal->>'requests')::int, 1) END AS requests,
                  CASE WHEN p.cache_hit THEN 0 ELSE COALESCE((p.proposal->>'estimated_cost_usd')::numeric, 0) END AS estimated_cost_usd,
                  w.dispute_type, w.segment, w.status
           FROM proposals p JOIN workflow_states w ON w.case_id = p.case_id
           WHERE p.created_at >= COALESCE(%s, '-infinity'::timestamptz)
           ORDER BY p.created_at, p.case_id, p.version""",
        (since,),
    )
    return cast(list[ProposalCallRow], cur.fetchall())
