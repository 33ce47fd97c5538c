"""Is a dispute fit for a proposal at all? Pure rules over what the three systems returned.

An invalid dispute stops at `enriched_context` with its reasons; no model is ever asked about it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from dispute_platform.domain.dispute_types import dispute_type_spec
from dispute_platform.domain.models import (
    BillingRecord,
    Charge,
    CrmRecord,
    DisputeEvent,
    DisputeType,
    PaymentRecord,
    ValidationIssue,
    ValidationVerdict,
)

# Days from the charge to the dispute, for every type whose entry in the registry
# (domain/dispute_types.py) has `dispute_window`; whether a type needs a charge, and whether
# one may be guessed for it, is written there too.
DISPUTE_WINDOW_DAYS = 120


def utc_date(moment: datetime) -> date:
    """The UTC calendar date of a moment. Day counts compare dates in one timezone: the CRM and
    the payment system may write the same instant with different offsets."""
    return moment.astimezone(UTC).date() if moment.tzinfo is not None else moment.date()


def find_disputed_charge(crm: CrmRecord, payments: PaymentRecord) -> Charge | None:
    """The charge the case is about: the one the CRM names, else the most recent settled charge
    on or before the case that is large enough to cover the disputed amount."""
    case = crm.case
    if case.charge_id:
        return next((c for c in payments.charges if c.charge_id == case.charge_id), None)
    spec = dispute_type_spec(case.dispute_type)
    if spec is not None and not spec.guess_charge:
        return None  # e.g. a general complaint names its charge or is about none: never guess one
    candidates = [
        c for c in payments.charges if c.status == "succeeded" and c.amount >= case.amount and c.created_at <= case.opened_at
    ]
    exact = [c for c in candidates if c.amount == case.amount]
    pool = exact or candidates
    return max(pool, key=lambda c: c.created_at, default=None)


def validate_dispute(
    event: DisputeEvent,
    crm: CrmRecord,
    billing: BillingRecord,
    payments: PaymentRecord,
    *,
    window_days: int = DISPUTE_WINDOW_DAYS,
) -> ValidationVerdict:
    """Apply the eligibility rules. The CRM case is the system of record: the event's hints
    (customer, amount, currency) may only make a dispute invalid, never widen it."""
    case, account = crm.case, crm.account
    issues: list[ValidationIssue] = []

    def issue(code: str, message: str) -> None:
        issues.append(ValidationIssue(code=code, message=message))

    spec = dispute_type_spec(case.dispute_type)
    if spec is None:
        allowed = ", ".join(t.value for t in DisputeType)
        issue("unknown_dispute_type", f"dispute type '{case.dispute_type}' is not one of: {allowed}")
    if event.customer_id and event.customer_id != case.customer_id:
        issue(
            "customer_mismatch",
            f"event names customer {event.customer_id} but the CRM case belongs to {case.customer_id}",
        )
    if account.status != "active":
        issue("account_inactive", f"account {account.customer_id} is {account.status}, not active")
    if event.currency and event.currency != case.currency:
        issue("currency_mismatch", f"event currency {event.currency} differs from the case's {case.currency}")
    if case.amount <= 0:
        issue("amount_not_positive", f"disputed amount {case.amount} must be above zero")

    charge = find_disputed_charge(crm, payments)
    days_since_charge: int | None = None
    if charge is None:
        if not (spec is not None and spec.charge_optional):
            named = f" {case.charge_id}" if case.charge_id else ""
            issue("charge_not_found", f"no charge{named} on the customer's payment history matches the dispute")
    else:
        days_since_charge = (utc_date(case.opened_at) - utc_date(charge.created_at)).days
        if charge.status != "succeeded":
            issue("charge_not_settled", f"charge {charge.charge_id} is {charge.status}, nothing was taken")
        if charge.currency != case.currency:
            issue("currency_mismatch", f"charge is in {charge.currency}, the case in {case.currency}")
        if days_since_charge < 0:
            issue("charge_after_case", f"charge {charge.charge_id} is dated after the case was opened")
        window_applies = spec is None or spec.dispute_window
        if window_applies and days_since_charge > window_days:
            issue(
                "outside_window",
                f"dispute raised {days_since_charge} days after the charge; the window is {window_days} days",
            )
        if case.amount > charge.amount:
            issue(
                "amount_exceeds_billed",
                f"disputed {case.amount} {case.currency} is more than the {charge.amount} billed",
            )
        elif charge.status == "succeeded" and case.amount > charge.refundable:
            if charge.refundable == 0:
                issue("already_refunded", f"charge {charge.charge_id} has already been refunded in full")
            else:
                issue("amount_exceeds_refundable", f"disputed {case.amount} but only {charge.refundable:.2f} is still refundable")

    return ValidationVerdict(
        issues=issues,
        dispute_type=case.dispute_type,
        disputed_amount=case.amount,
        billed_amount=charge.amount if charge else None,
        refundable_amount=charge.refundable if charge else None,
        days_since_charge=days_since_charge,
        disputed_charge_id=charge.charge_id if charge else None,
    )


def select_relevant_charges(charges: list[Charge], disputed: Charge | None, *, limit: int = 5) -> list[Charge]:
    """The few charges a reviewer (or a model) needs: the disputed one, then those that share
    its invoice, amount or period (duplicates show up there), then the nearest in time."""
    if disputed is None:
        return sorted(charges, key=lambda c: c.created_at, reverse=True)[:limit]

    def rank(charge: Charge) -> tuple[int, float]:
        if charge.charge_id == disputed.charge_id:
            tier = 0
        elif disputed.invoice_id and charge.invoice_id == disputed.invoice_id:
            tier = 1
        elif charge.period_start and charge.period_start == disputed.period_start:
            tier = 2
        elif charge.amount == disputed.amount:
            tier = 3
        else:
            tier = 4
        distance = abs((charge.created_at - disputed.created_at).total_seconds())
        return tier, distance

    return sorted(charges, key=rank)[:limit]


def amount_hint_mismatch(event: DisputeEvent, crm: CrmRecord) -> Decimal | None:
    """The event's amount when it disagrees with the CRM (the CRM's figure is used)."""
    if event.amount is not None and event.amount != crm.case.amount:
        return event.amount
    return None
