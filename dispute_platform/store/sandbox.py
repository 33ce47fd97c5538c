"""The sandbox providers' own ledger: `sandbox_refunds` and `sandbox_credits`, the money the local
payment gateway and billing system have moved. Like Stripe and Zuora, they remember an
idempotency key for a limited time (`ttl_hours`), after which a replayed key moves money again:
the platform's own ledger (store/executions.py) is what keeps a dispute to one movement."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal, TypedDict, cast, overload

from dispute_platform.store.db import Cursor
from dispute_platform.store.rows import SandboxCreditRow, SandboxRefundRow

Ledger = Literal["sandbox_refunds", "sandbox_credits"]


def lock_key(cur: Cursor, name: str) -> None:
    """Serialise writers of one idempotency key or one charge until the transaction ends."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))


@overload
def remembered(
    cur: Cursor, table: Literal["sandbox_refunds"], idempotency_key: str, ttl_hours: float
) -> SandboxRefundRow | None: ...
@overload
def remembered(
    cur: Cursor, table: Literal["sandbox_credits"], idempotency_key: str, ttl_hours: float
) -> SandboxCreditRow | None: ...
@overload
def remembered(
    cur: Cursor, table: Ledger, idempotency_key: str, ttl_hours: float
) -> SandboxRefundRow | SandboxCreditRow | None: ...
def remembered(cur: Cursor, table: Ledger, idempotency_key: str, ttl_hours: float) -> SandboxRefundRow | SandboxCreditRow | None:
    """The movement made with this key, if the provider still remembers the key."""
    if table not in ("sandbox_refunds", "sandbox_credits"):
        raise ValueError(f"not a sandbox ledger: {table}")
    cur.execute(
        f"SELECT * FROM {table} WHERE idempotency_key = %s AND created_at > now() - make_interval(secs => %s) "  # noqa: S608 - table checked against the two ledgers above
        "ORDER BY created_at DESC LIMIT 1",
        (idempotency_key, ttl_hours * 3600),
    )
    return cast(SandboxRefundRow | SandboxCreditRow | None, cur.fetchone())


def insert_credit(
    cur: Cursor,
    *,
    credit_id: str,
    customer_id: str,
    amount: Decimal,
    currency: str,
    idempotency_key: str,
    reason: str,
    case_id: str,
) -> SandboxCreditRow:
    cur.execute(
        """INSERT INTO sandbox_credits (credit_id, customer_id, amount, currency, idempotency_key, reason, case_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *""",
        (credit_id, customer_id, amount, currency, idempotency_key, reason, case_id),
    )
    row = cur.fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    return cast(SandboxCreditRow, row)


def credits_for_case(cur: Cursor, customer_id: str, case_id: str) -> list[SandboxCreditRow]:
    cur.execute(
        "SELECT * FROM sandbox_credits WHERE customer_id = %s AND case_id = %s ORDER BY created_at", (customer_id, case_id)
    )
    return cast(list[SandboxCreditRow], cur.fetchall())


class RefundOnChargeRow(TypedDict):
    refund_id: str
    charge_id: str
    amount: Decimal
    created_at: datetime
    reason: str
    idempotency_key: str


def refunds_on(cur: Cursor, charge_ids: list[str]) -> list[RefundOnChargeRow]:
    cur.execute(
        "SELECT refund_id, charge_id, amount, created_at, reason, idempotency_key FROM sandbox_refunds "
        "WHERE charge_id = ANY(%s) ORDER BY created_at",
        (charge_ids,),
    )
    return cast(list[RefundOnChargeRow], cur.fetchall())


def refunds_for_case(cur: Cursor, charge_id: str, case_id: str) -> list[SandboxRefundRow]:
    cur.execute("SELECT * FROM sandbox_refunds WHERE charge_id = %s AND case_id = %s ORDER BY created_at", (charge_id, case_id))
    return cast(list[SandboxRefundRow], cur.fetchall())


def refunded_total(cur: Cursor, charge_id: str) -> Decimal:
    cur.execute("SELECT COALESCE(SUM(amount), 0) AS s FROM sandbox_refunds WHERE charge_id = %s", (charge_id,))
    row = cur.fetchone()
    return Decimal(row["s"]) if row is not None else Decimal("0")


def insert_refund(
    cur: Cursor,
    *,
    refund_id: str,
    charge_id: str,
    customer_id: str,
    amount: Decimal,
    currency: str,
    idempotency_key: str,
    reason: str,
    created_at: datetime,
    case_id: str,
) -> SandboxRefundRow:
    cur.execute(
        """INSERT INTO sandbox_refunds (refund_id, charge_id, customer_id, amount, currency, idempotency_key, reason,
                                        created_at, case_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *""",
        (refund_id, charge_id, customer_id, amount, currency, idempotency_key, reason, created_at, case_id),
    )
    row = cur.fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    return cast(SandboxRefundRow, row)
