"""Saving a proposal version: one transaction under the dispute's lock, and only while the
dispute may still take a proposal. A batch that read the dispute before a reviewer decided
cannot put a new version over the decision (or over an executed dispute)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from dispute_platform.domain.states import Status
from dispute_platform.store.audit import jsonb
from dispute_platform.store.db import Cursor, Row
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
