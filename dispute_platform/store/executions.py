"""Executions: one row per money movement of a dispute.

The database holds the guarantees (sql/006): at most one started, succeeded or no-op row per
dispute (a partial unique index), a recorded outcome is never overwritten and no row is deleted
(a trigger). Every attempt at a movement reuses its row and its idempotency key; a movement the
provider refused is `failed`, and the next movement of that dispute gets the next key.
"""

from __future__ import annotations

from decimal import Decimal
from typing import cast

from dispute_platform.store.db import Cursor, Row
from dispute_platform.store.rows import ExecutionRow

LIVE = ("started", "succeeded", "noop")


def movement_key(case_id: str, earlier_refusals: int) -> str:
    """The idempotency key of a dispute's movement: the same for every attempt at it."""
    return f"dispute-{case_id}" if earlier_refusals == 0 else f"dispute-{case_id}-m{earlier_refusals + 1}"


def live_execution(cur: Cursor, case_id: str) -> ExecutionRow | None:
    """The dispute's started, succeeded or no-op execution (the index allows one at most)."""
    cur.execute("SELECT * FROM executions WHERE case_id = %s AND status = ANY(%s)", (case_id, list(LIVE)))
    return cast(ExecutionRow | None, cur.fetchone())


def refusals(cur: Cursor, case_id: str) -> int:
    cur.execute("SELECT COUNT(*) AS n FROM executions WHERE case_id = %s AND status = 'failed'", (case_id,))
    return int(cast(Row, cur.fetchone())["n"])  # an aggregate: always a row


def open_execution(
    cur: Cursor,
    *,
    case_id: str,
    version: int,
    decision_id: int,
    action: str,
    amount: Decimal,
    currency: str,
    charge_id: str | None,
    customer_id: str | None,
    status: str = "started",
) -> ExecutionRow:
    """Insert the dispute's movement (call under the case lock, after `live_execution` found none).
    The partial unique index refuses a second live row even if a caller forgot to look."""
    key = movement_key(case_id, refusals(cur, case_id))
    cur.execute(
        """INSERT INTO executions (case_id, proposal_version, decision_id, idempotency_key, action, amount, currency,
                                   status, attempts, charge_id, customer_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1, %s, %s) RETURNING *""",
        (case_id, version, decision_id, key, action, amount, currency, status, charge_id, customer_id),
    )
    return cast(ExecutionRow, cur.fetchone())  # INSERT ... RETURNING: always a row (or an error)


def count_attempt(cur: Cursor, execution_id: int) -> ExecutionRow | None:
    cur.execute(
        "UPDATE executions SET attempts = attempts + 1, updated_at = now() WHERE id = %s AND status = 'started' RETURNING *",
        (execution_id,),
    )
    return cast(ExecutionRow | None, cur.fetchone())


def note_error(cur: Cursor, execution_id: int, error: str) -> None:
    """An attempt whose outcome is unknown (a timeout, a lost response): the row stays started,
    so the next attempt reconciles with the provider before it calls again."""
    cur.execute(
        "UPDATE executions SET error = %s, updated_at = now() WHERE id = %s AND status = 'started'", (error, execution_id)
    )


def settle(cur: Cursor, execution_id: int, status: str, *, provider_ref: str | None = None, error: str | None = None,
           reconciled: bool = False) -> bool:  # fmt: skip
    """Record the outcome of a started movement. Only a started row changes: a success recorded by
    another attempt stays as it is (returns False)."""
    cur.execute(
        """UPDATE executions SET status = %s, provider_ref = COALESCE(%s, provider_ref), error = %s,
                                 reconciled = reconciled OR %s, updated_at = now()
           WHERE id = %s AND status = 'started' RETURNING id""",
        (status, provider_ref, error, reconciled, execution_id),
    )
    return cur.fetchone() is not None


def committed_on_charge(cur: Cursor, charge_id: str, *, excluding: int) -> dict[str, Decimal]:
    """What the platform has committed on a charge outside one execution: credits started or
    succeeded (the payment provider does not know them), and refunds still in flight (started,
    perhaps not yet on the provider's books). Call under the charge's lock."""
    cur.execute(
        """SELECT COALESCE(SUM(amount) FILTER (WHERE action = 'credit' AND status IN ('started', 'succeeded')), 0) AS credits,
                  COALESCE(SUM(amount) FILTER (WHERE action <> 'credit' AND status = 'started'), 0) AS refunds_in_flight
           FROM executions WHERE charge_id = %s AND id <> %s""",
        (charge_id, excluding),
    )
    row = cast(Row, cur.fetchone())  # an aggregate: always a row
    return {"credits": row["credits"], "refunds_in_flight": row["refunds_in_flight"]}


def lock_charge(cur: Cursor, charge_id: str) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("charge:" + charge_id,))


def succeeded_execution(cur: Cursor, case_id: str) -> ExecutionRow | None:
    cur.execute(
        "SELECT * FROM executions WHERE case_id = %s AND status IN ('succeeded', 'noop') ORDER BY id DESC LIMIT 1",
        (case_id,),
    )
    return cast(ExecutionRow | None, cur.fetchone())


def executions_for(cur: Cursor, case_id: str) -> list[ExecutionRow]:
    cur.execute("SELECT * FROM executions WHERE case_id = %s ORDER BY id", (case_id,))
    return cast(list[ExecutionRow], cur.fetchall())
