"""Reads of the `workflow_states` table for the endpoint, the desk and the CLI (writes go through
store/transitions.py, the state machine)."""

from __future__ import annotations

import uuid

from dispute_platform.store.db import Cursor, Row


def state_by_run(cur: Cursor, run_id: str) -> Row | None:
    """The dispute whose workflow id is `run_id`; None for an unknown or malformed id."""
    try:
        uuid.UUID(run_id)
    except ValueError:
        return None
    cur.execute("SELECT * FROM workflow_states WHERE run_id = %s::uuid", (run_id,))
    return cur.fetchone()


def status_summary(cur: Cursor) -> list[Row]:
    """Every dispute with its latest proposal and latest execution: what `status` and `run` print."""
    cur.execute(
        """SELECT w.case_id, w.dispute_type, w.segment, w.status, w.status_reason, p.action, p.amount, p.currency,
                  p.confidence, p.cost_usd, p.version, p.flags, e.status AS execution, e.amount AS executed_amount
           FROM workflow_states w
           LEFT JOIN LATERAL (SELECT * FROM proposals p WHERE p.case_id = w.case_id ORDER BY version DESC LIMIT 1) p ON TRUE
           LEFT JOIN LATERAL (SELECT * FROM executions e WHERE e.case_id = w.case_id ORDER BY id DESC LIMIT 1) e ON TRUE
           ORDER BY w.case_id"""
    )
    return cur.fetchall()
