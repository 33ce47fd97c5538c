"""The three source systems behind one interface each: CRM, billing, payments.

The sandbox implementations serve a bundled, deterministic world (domain/world.py) and keep the
refunds and credits the platform makes in their own state (sandbox_* tables), like a real
provider would: an idempotency key seen within the last `idempotency_ttl_hours` (Stripe and
Zuora keep theirs about 24 h) returns the original receipt; after that the key is forgotten and a
repeated call moves money again. That is why execution never relies on keys alone: before any
call it asks the provider what already exists for the dispute (`find_refunds`, `find_credits`:
our case id travels with every movement). Real connectors (Salesforce, Zuora, Stripe) implement
the same protocols.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property
from typing import Protocol, runtime_checkable

from dagster import ConfigurableResource
from pydantic import BaseModel

from dispute_platform.domain.models import BillingRecord, Charge, CrmRecord, PaymentRecord, Refund
from dispute_platform.domain.world import SandboxWorld
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.store import sandbox as ledger


class CaseNotFound(LookupError):
    """The CRM has no such case: the dispute is stopped as invalid, not retried."""


class ProviderError(RuntimeError):
    """A source system failed in a way that may succeed on retry (timeouts, 5xx, 429)."""


class RefundRefused(RuntimeError):
    """The payment provider refused a refund for a reason a retry will not fix."""


class MoneyReceipt(BaseModel):
    """Proof that money moved: a refund on a charge or a credit on an account."""

    kind: str  # refund | credit
    reference: str
    amount: Decimal
    currency: str
    idempotency_key: str
    replayed: bool = False  # True when the provider had already done this (a retry)


@runtime_checkable
class CRMProvider(Protocol):
    def fetch_case(self, case_id: str) -> CrmRecord: ...

    def record_outcome(self, case_id: str, status: str, comment: str) -> None: ...


@runtime_checkable
class BillingProvider(Protocol):
    def fetch_billing(self, customer_id: str) -> BillingRecord: ...

    def issue_credit(
        self, customer_id: str, amount: Decimal, currency: str, idempotency_key: str, reason: str, *, case_id: str
    ) -> MoneyReceipt: ...

    def find_credits(self, customer_id: str, case_id: str) -> list[MoneyReceipt]:
        """Credits on the account that carry our case id (whatever key they were made with)."""
        ...


@runtime_checkable
class PaymentsProvider(Protocol):
    def fetch_payments(self, customer_id: str) -> PaymentRecord: ...

    def refund(
        self, charge_id: str, amount: Decimal, currency: str, idempotency_key: str, reason: str, *, case_id: str
    ) -> MoneyReceipt: ...

    def find_refunds(self, charge_id: str, case_id: str) -> list[MoneyReceipt]:
        """Refunds on the charge that carry our case id (whatever key they were made with)."""
        ...


def _reference(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class _SandboxBase(ConfigurableResource):
    sandbox_data: str | None = None
    postgres: PostgresResource
    idempotency_ttl_hours: float = 24.0

    @cached_property
    def world(self) -> SandboxWorld:
        return SandboxWorld.load(self.sandbox_data)


class SandboxCRM(_SandboxBase):
    def fetch_case(self, case_id: str) -> CrmRecord:
        case = self.world.cases_by_id.get(case_id)
        if case is None:
            raise CaseNotFound(f"case {case_id} does not exist in the CRM")
        account = self.world.accounts_by_id[case.customer_id]
        return CrmRecord(case=case, account=account, incidents=self.world.incidents_for(account))

    def record_outcome(self, case_id: str, status: str, comment: str) -> None:
        # The sandbox CRM's cases are the world file; the outcome lives in workflow_states.
        return None


class SandboxBilling(_SandboxBase):
    def fetch_billing(self, customer_id: str) -> BillingRecord:
        return BillingRecord(
            subscription=self.world.subscription_for(customer_id),
            invoices=self.world.invoices_by_customer.get(customer_id, []),
        )

    def issue_credit(
        self, customer_id: str, amount: Decimal, currency: str, idempotency_key: str, reason: str, *, case_id: str
    ) -> MoneyReceipt:
        if customer_id not in self.world.accounts_by_id:
            raise RefundRefused(f"no billing account {customer_id}")
        if amount <= 0:
            raise RefundRefused("credit amount must be positive")

        def write(cur) -> MoneyReceipt:
            ledger.lock_key(cur, "sandbox-key:" + idempotency_key)
            existing = ledger.remembered(cur, "sandbox_credits", idempotency_key, self.idempotency_ttl_hours)
            if existing is not None:
                return _credit_receipt(existing, replayed=True)
            row = ledger.insert_credit(
                cur, credit_id=_reference("cr"), customer_id=customer_id, amount=amount, currency=currency,
                idempotency_key=idempotency_key, reason=reason, case_id=case_id,
            )  # fmt: skip
            return _credit_receipt(row, replayed=False)

        return self.postgres.db.transact(write)

    def find_credits(self, customer_id: str, case_id: str) -> list[MoneyReceipt]:
        rows = self.postgres.db.transact(lambda cur: ledger.credits_for_case(cur, customer_id, case_id))
        return [_credit_receipt(row, replayed=True) for row in rows]


class SandboxPayments(_SandboxBase):
    def _state_refunds(self, charge_ids: list[str]) -> list[Refund]:
        rows = self.postgres.db.transact(lambda cur: ledger.refunds_on(cur, charge_ids))
        return [Refund(**row) for row in rows]

    def fetch_payments(self, customer_id: str) -> PaymentRecord:
        charges = self.world.charges_by_customer.get(customer_id, [])
        ids = [c.charge_id for c in charges]
        made = self._state_refunds(ids)
        refunded: dict[str, Decimal] = {}
        for refund in made:
            refunded[refund.charge_id] = refunded.get(refund.charge_id, Decimal("0")) + refund.amount
        charges = [
            c.model_copy(update={"amount_refunded": c.amount_refunded + refunded[c.charge_id]}) if c.charge_id in refunded else c
            for c in charges
        ]
        return PaymentRecord(
            charges=charges,
            refunds=self.world.refunds_for(set(ids)) + made,
            disputes=self.world.disputes_for(set(ids)),
        )

    def find_refunds(self, charge_id: str, case_id: str) -> list[MoneyReceipt]:
        rows = self.postgres.db.transact(lambda cur: ledger.refunds_for_case(cur, charge_id, case_id))
        return [_refund_receipt(row, replayed=True) for row in rows]

    def refund(
        self, charge_id: str, amount: Decimal, currency: str, idempotency_key: str, reason: str, *, case_id: str
    ) -> MoneyReceipt:
        charge: Charge | None = self.world.charges_by_id.get(charge_id)
        if charge is None:
            raise RefundRefused(f"no charge {charge_id}")
        if currency != charge.currency:
            raise RefundRefused(f"refund in {currency} on a {charge.currency} charge")
        if amount <= 0:
            raise RefundRefused("refund amount must be positive")

        def write(cur) -> MoneyReceipt:
            # Lock the charge's refunds so that two concurrent refunds cannot both pass the
            # refundable check (what Stripe does on its side).
            ledger.lock_key(cur, charge_id)
            existing = ledger.remembered(cur, "sandbox_refunds", idempotency_key, self.idempotency_ttl_hours)
            if existing is not None:
                if existing["charge_id"] != charge_id or existing["amount"] != amount:
                    raise RefundRefused(
                        f"idempotency key {idempotency_key} was used for a different refund "
                        f"({existing['amount']} on {existing['charge_id']})"
                    )
                return _refund_receipt(existing, replayed=True)
            remaining = charge.refundable - ledger.refunded_total(cur, charge_id)
            if amount > remaining:
                raise RefundRefused(f"refund {amount} exceeds the {remaining} still refundable on {charge_id}")
            row = ledger.insert_refund(
                cur, refund_id=_reference("re"), charge_id=charge_id, customer_id=charge.customer_id, amount=amount,
                currency=currency, idempotency_key=idempotency_key, reason=reason, created_at=datetime.now(UTC),
                case_id=case_id,
            )  # fmt: skip
            return _refund_receipt(row, replayed=False)

        return self.postgres.db.transact(write)


def _refund_receipt(row: dict, *, replayed: bool) -> MoneyReceipt:
    return MoneyReceipt(kind="refund", reference=row["refund_id"], amount=row["amount"], currency=row["currency"],
                        idempotency_key=row["idempotency_key"], replayed=replayed)  # fmt: skip


def _credit_receipt(row: dict, *, replayed: bool) -> MoneyReceipt:
    return MoneyReceipt(kind="credit", reference=row["credit_id"], amount=row["amount"], currency=row["currency"],
                        idempotency_key=row["idempotency_key"], replayed=replayed)  # fmt: skip
