"""The state machine, enforced where the data lives.

Every status change of a dispute goes through `transition`: under the dispute's lock (the one
lock every writer takes: intake, proposal saves, decisions, executions, the SLA sweep), an
`UPDATE ... WHERE status = ANY(allowed_from)` moves it, or finds it elsewhere, changes nothing and
leaves an audit row saying who tried what. Callers learn which happened from the return value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dispute_platform.domain.states import ALLOWED_FROM, Status
from dispute_platform.store.audit import audit, jsonb
from dispute_platform.store.db import Cursor

# Columns a transition may write besides the status (names never come from input).
WRITABLE_COLUMNS = frozenset({
    "customer_id", "dispute_type", "segment", "disputed_amount", "currency", "crm_data", "billing_data",
    "payment_data", "validation", "resolution_proposal", "proposal_version", "human_review_data", "final_resolution",
})  # fmt: skip


def lock_case(cur: Cursor, case_id: str) -> None:
    """Serialise every writer of one dispute (transaction-scoped; taking it twice is harmless)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("case:" + case_id,))


def transition(
    cur: Cursor,
    case_id: str,
    to: Status,
    step: str,
    reason: str | None = None,
    *,
    allowed_from: Iterable[Status] | None = None,
    expect_version: int | None = None,
    run_id: str | None = None,
    actor: str = "system",
    completed: bool = False,
    **columns: Any,
) -> bool:
    """Move `case_id` to `to` if its status is one `to` may be reached from (narrowed further by
    `allowed_from`, and to one proposal version by `expect_version`). Returns whether it moved;
    a refused move is audited and writes nothing else."""
    unknown = set(columns) - WRITABLE_COLUMNS
    if unknown:
        raise ValueError(f"not workflow_states columns: {sorted(unknown)}")
    allowed = ALLOWED_FROM[to] if allowed_from is None else ALLOWED_FROM[to] & frozenset(allowed_from)
    lock_case(cur, case_id)
    assignments = ["status = %s", "current_step = %s", "status_reason = %s", "updated_at = now()"]
    values: list[Any] = [to.value, step, reason]
    for name, value in columns.items():
        assignments.append(f"{name} = %s")
        values.append(jsonb(value) if isinstance(value, dict | list) else value)
    if completed:
        assignments.append("completed_at = now()")
    where = "case_id = %s AND status = ANY(%s)"
    params: list[Any] = [case_id, [s.value for s in allowed]]
    if expect_version is not None:
        where += " AND proposal_version = %s"
        params.append(expect_version)
    cur.execute(f"UPDATE workflow_states SET {', '.join(assignments)} WHERE {where} RETURNING id", (*values, *params))  # noqa: S608 - column names from the fixed allow-list; values are parameters
    if cur.fetchone() is not None:
        return True
    cur.execute("SELECT status, proposal_version FROM workflow_states WHERE case_id = %s", (case_id,))
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"no workflow state for case {case_id}")
    audit(
        cur,
        case_id,
        step,
        "transition_refused",
        {
            "from": row["status"],
            "to": to.value,
            "allowed_from": sorted(s.value for s in allowed),
            "proposal_version": row["proposal_version"],
            "expected_version": expect_version,
        },
        actor=actor,
        run_id=run_id,
    )
    return False


def current_status(cur: Cursor, case_id: str) -> str | None:
    cur.execute("SELECT status FROM workflow_states WHERE case_id = %s", (case_id,))
    row = cur.fetchone()
    return row["status"] if row else None
