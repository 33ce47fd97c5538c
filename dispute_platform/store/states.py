"""Reads of the `workflow_states` table for the endpoint, the desk and the CLI (writes go through
store/transitions.py, the state machine)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TypedDict, cast

from dispute_platform.store.db import Cursor
from dispute_platform.store.rows import WorkflowStateRow


def state_by_run(cur: Cursor, run_id: str) -> WorkflowStateRow | None:
    """The dispute whose workflow id is `run_id`; None for an unknown or malformed id."""
    try:
        uuid.UUID(run_id)
    except ValueError:
        return None
    cur.execute("SELECT * FROM workflow_states WHERE run_id = %s::uuid", (run_id,))
    return cast(WorkflowStateRow | None, cur.fetchone())


class StatusSummaryRow(TypedDict):
    """A dispute, its latest proposal (None before the first) and its latest execution (None before one)."""

    case_id: str
    dispute_type: str | None
    segment: str | None
    status: str
    status_reason: str | None
    action: str | None
    amount: Decimal | None
    currency: str | None
    confidence: float | None
    cost_usd: Decimal | None
    version: int | None
    flags: list[str] | None
    execution: str | None  # the execution's status
    executed_amount: Decimal | None


def status_summary(cur: Cursor) -> list[StatusSummaryRow]:
    """Every dispute with its latest proposal and latest execution: what `status` and `run` print."""
    cur.execute(
        """SELECT w.case_id, w.dispute_type, w.segment, w.status, w.status_reason, p.action, p.amount, p.currency,
                  p.confidence, p.cost_usd, p.version, p.flags, e.status AS execution, e.amount AS executed_amount
           FROM workflow_states w
           LEFT JOIN LATERAL (SELECT * FROM proposals p WHERE p.case_id = w.case_id ORDER BY version DESC LIMIT 1) p ON TRUE
           LEFT JOIN LATERAL (SELECT * FROM executions e WHERE e.case_id = w.case_id ORDER BY id DESC LIMIT 1) e ON TRUE
           ORDER BY w.case_id"""
    )
    return cast(list[StatusSummaryRow], cur.fetchall())
