"""Small hand-built CRM / billing / payment records for the domain tests.

Every builder takes keyword overrides, so a test states only what matters to it. Defaults make a
valid dispute: an active smb account on a $120.00 monthly plan, one settled charge, a case opened
ten days after it for the whole amount.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dispute_platform.domain.context import enrich
from dispute_platform.domain.facts import DisputeFacts, derive_facts
from dispute_platform.domain.models import (
    Account,
    BillingRecord,
    Case,
    Charge,
    CrmRecord,
    DisputeEvent,
    EnrichedContext,
    Incident,
    Invoice,
    PaymentRecord,
    Plan,
    PolicyHit,
    SimilarCase,
    Subscription,
)

CUSTOMER = "CUST-1"
CHARGE_AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
OPENED_AT = CHARGE_AT + timedelta(days=10)


def money(value: str | int | Decimal) -> Decimal:
    return Decimal(str(value))


def account(**overrides: Any) -> Account:
    fields: dict[str, Any] = dict(
        customer_id=CUSTOMER,
        name="Little River Print Shop",
        email="billing@littleriver.example",
        phone="+1 (512) 555-0073",
        segment="smb",
        status="active",
        standing="good",
        created_at=date(2024, 1, 15),
    )
    return Account(**(fields | overrides))


def case(**overrides: Any) -> Case:
    fields: dict[str, Any] = dict(
        case_id="CASE-1",
        customer_id=CUSTOMER,
        dispute_type="duplicate_charge",
        amount=money("120.00"),
        currency="USD",
        description="I was charged twice for the same month.",
        subject="Charged twice",
        opened_at=OPENED_AT,
        charge_id="ch_1",
    )
    return Case(**(fields | overrides))


def crm(*, incidents: list[Incident] | None = None, acct: Account | None = None, **case_overrides: Any) -> CrmRecord:
    return CrmRecord(case=case(**case_overrides), account=acct or account(), incidents=incidents or [])


def charge(charge_id: str = "ch_1", **overrides: Any) -> Charge:
    fields: dict[str, Any] = dict(
        charge_id=charge_id,
        customer_id=CUSTOMER,
        amount=money("120.00"),
        currency="USD",
        created_at=CHARGE_AT,
        status="succeeded",
        description="Team plan, monthly",
        kind="subscription",
        invoice_id=f"in_{charge_id}",
        period_start=date(2025, 6, 1),
        period_end=date(2025, 6, 30),
        card_last4="4242",
    )
    return Charge(**(fields | overrides))


def payments(*charges: Charge) -> PaymentRecord:
    return PaymentRecord(charges=list(charges))


def plan(**overrides: Any) -> Plan:
    fields: dict[str, Any] = dict(plan_id="team-monthly", name="Team", billing_period="monthly", price=money("120.00"))
    return Plan(**(fields | overrides))


def subscription(**overrides: Any) -> Subscription:
    fields: dict[str, Any] = dict(
        subscription_id="sub_1",
        customer_id=CUSTOMER,
        plan=plan(),
        status="active",
        started_at=date(2024, 1, 15),
        current_period_start=date(2025, 6, 1),
        current_period_end=date(2025, 6, 30),
    )
    return Subscription(**(fields | overrides))


def billing(sub: Subscription | None = None, invoices: list[Invoice] | None = None) -> BillingRecord:
    return BillingRecord(subscription=sub if sub is not None else subscription(), invoices=invoices or [])


def event(**overrides: Any) -> DisputeEvent:
    fields: dict[str, Any] = dict(case_id="CASE-1", customer_id=CUSTOMER, currency="USD")
    return DisputeEvent(**(fields | overrides))


def incident(started_at: datetime, hours: str | float, *, scheduled: bool = False, incident_id: str = "inc_1") -> Incident:
    return Incident(
        incident_id=incident_id,
        started_at=started_at,
        ended_at=started_at + timedelta(hours=float(hours)),
        summary="API outage",
        scheduled_maintenance=scheduled,
    )


def context(
    *,
    charges: list[Charge] | None = None,
    sub: Subscription | None = None,
    no_subscription: bool = False,
    acct: Account | None = None,
    incidents: list[Incident] | None = None,
    ev: DisputeEvent | None = None,
    **case_overrides: Any,
) -> EnrichedContext:
    """An enriched context through the real `enrich` (validation and charge selection)."""
    crm_record = crm(incidents=incidents, acct=acct, **case_overrides)
    bill = BillingRecord(subscription=None) if no_subscription else billing(sub)
    pays = payments(*(charges if charges is not None else [charge()]))
    return enrich(ev or event(case_id=crm_record.case.case_id), crm_record, bill, pays)


def facts_for(**kwargs: Any) -> DisputeFacts:
    return derive_facts(context(**kwargs))


LOREM = (
    "Refunds are issued to the original payment method and credits are applied to the customer's account. "
    "The reviewer checks the charge, the plan, the account's standing and the evidence the type needs. "
)


def policy_hit(n: int = 1, *, words: int = 400) -> PolicyHit:
    text = " ".join((LOREM * (words // 30 + 1)).split()[:words])
    return PolicyHit(
        citation=f"POL-00{n} §{n}",
        policy_id=f"POL-00{n}",
        title=f"Policy number {n}",
        category="general",
        text=text,
        score=0.8,
    )


def similar_case(n: int = 1, *, words: int = 300, summary: str | None = None) -> SimilarCase:
    text = summary if summary is not None else " ".join((LOREM * (words // 30 + 1)).split()[:words])
    return SimilarCase(
        case_id=f"HIST-{n:04d}",
        dispute_type="duplicate_charge",
        segment="smb",
        amount=money("120.00"),
        action="full_refund",
        resolved_amount=money("120.00"),
        summary=text,
        score=0.7,
    )
