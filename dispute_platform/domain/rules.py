"""The company's policy rules, one function per dispute type, over a dispute's facts.

Each rule reads the figures its policy turns on (domain/facts.py) and says what the policy
decides, with the sections it relies on. Which rule serves which dispute type is written in the
registry (domain/dispute_types.py); `apply_policy_rules` (domain/precedent.py) looks it up.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

from dispute_platform.domain.dispute_facts import PLAN_CHARGE_KINDS, DisputeFacts, cents, months_used
from dispute_platform.domain.models import Action, Segment

ZERO = Decimal("0")

OUTAGE_SCHEDULE: tuple[tuple[Decimal, Decimal], ...] = (
    # (hours strictly above, share of the monthly fee); POL-003 §2
    (Decimal("24"), Decimal("0.50")),
    (Decimal("4"), Decimal("0.25")),
)
FULL_REFUND_DAYS = 14  # POL-004 §2
ANNUAL_PRO_RATA_LAST_DAY = 30  # POL-004 §3
DELIVERY_WINDOW_DAYS = 14  # POL-001 §6
GOODWILL_SHARE = Decimal("0.10")  # POL-008 §2


class RuleOutcome(BaseModel):
    """What the policies say about one dispute, before precedent and guardrails."""

    action: Action
    amount: Decimal = ZERO
    citations: list[str]
    reason: str
    confidence: float = Field(ge=0, le=1)
    # False when the records cannot settle the dispute (no record to check, a general complaint):
    # the rules escalate, and the engine looks to precedent instead (domain/precedent_vote.py).
    # A policy that itself demands a person (an unauthorized charge) has decided: True.
    decided: bool = True


def outage_credit_share(hours: Decimal) -> Decimal:
    """POL-003 §2: <1 h nothing; 1-4 h 10%; >4-24 h 25%; >24 h 50%."""
    if hours < 1:
        return ZERO
    for above, share in OUTAGE_SCHEDULE:
        if hours > above:
            return share
    return Decimal("0.10")


def _refund(amount: Decimal, facts: DisputeFacts) -> Action:
    return Action.FULL_REFUND if facts.charge_amount is not None and amount >= facts.charge_amount else Action.PARTIAL_REFUND


def _refund_limit(facts: DisputeFacts, amount: Decimal) -> Decimal:
    limit = min(amount, facts.disputed_amount)
    if facts.refundable is not None:
        limit = min(limit, facts.refundable)
    return cents(limit)


def duplicate_charge_rule(f: DisputeFacts) -> RuleOutcome:
    if f.duplicate_of and f.charge_amount is not None:
        amount = _refund_limit(f, f.charge_amount)
        return RuleOutcome(
            action=_refund(amount, f),
            amount=amount,
            citations=["POL-002 §2"],
            reason=f"charges {f.charge_id} and {f.duplicate_of} are for the same invoice or period; the duplicate is refunded",
            confidence=0.92,
        )
    return RuleOutcome(
        action=Action.DENY,
        citations=["POL-002 §3"],
        reason="no second charge for the same invoice or period was found",
        confidence=0.8,
    )


def service_outage_rule(f: DisputeFacts) -> RuleOutcome:
    if f.monthly_fee is None:
        return RuleOutcome(
            action=Action.ESCALATE,
            citations=["POL-003 §3"],
            reason="no subscription on record, so no monthly fee to base a credit on",
            confidence=0.5,
            decided=False,
        )
    hours = f.outage_hours or ZERO
    share = outage_credit_share(hours)
    if share == 0:
        return RuleOutcome(
            action=Action.DENY,
            citations=["POL-003 §2"],
            reason=f"{hours} h of unscheduled outage in the billing period is under the 1 h threshold",
            confidence=0.88,
        )
    credit = cents(min(f.monthly_fee * share, f.disputed_amount))
    return RuleOutcome(
        action=Action.CREDIT,
        amount=credit,
        citations=["POL-003 §2", "POL-003 §3"],
        reason=f"{hours} h of outage in the billing period earns a {share:.0%} credit of the {f.monthly_fee} monthly fee",
        confidence=0.92,
    )


def cancellation_refund_rule(f: DisputeFacts) -> RuleOutcome:
    days = f.days_to_cancel_request
    if f.charge_kind not in PLAN_CHARGE_KINDS:
        return RuleOutcome(
            action=Action.DENY,
            citations=["POL-004 §1"],
            reason=f"the disputed charge is a {f.charge_kind or 'missing'} charge, not a plan renewal",
            confidence=0.8,
        )
    if days is None or f.charge_amount is None:
        return RuleOutcome(
            action=Action.DENY,
            citations=["POL-004 §4"],
            reason="no cancellation request is on record for this subscription",
            confidence=0.8,
        )
    if days <= FULL_REFUND_DAYS:
        amount = _refund_limit(f, f.charge_amount)
        return RuleOutcome(
            action=_refund(amount, f),
            amount=amount,
            citations=["POL-004 §2"],
            reason=f"cancellation asked {days} day(s) after the renewal charge, within {FULL_REFUND_DAYS} days",
            confidence=0.93,
        )
    if f.billing_period == "annual" and days <= ANNUAL_PRO_RATA_LAST_DAY:
        unused = 12 - months_used(days)
        amount = _refund_limit(f, cents(f.charge_amount * unused / 12))
        return RuleOutcome(
            action=Action.PARTIAL_REFUND,
            amount=amount,
            citations=["POL-004 §3"],
            reason=f"annual plan cancelled on day {days}: {unused} unused month(s) refunded pro rata",
            confidence=0.9,
        )
    return RuleOutcome(
        action=Action.DENY,
        citations=["POL-004 §4"],
        reason=f"cancellation asked {days} days after the renewal of the {f.billing_period or 'unknown'} plan, "
        "outside the refund windows",
        confidence=0.88,
    )


def unauthorized_rule(f: DisputeFacts) -> RuleOutcome:
    return RuleOutcome(
        action=Action.ESCALATE,
        amount=cents(f.disputed_amount),
        citations=["POL-005 §2"],
        reason="unauthorized-charge claims always go to the fraud team and a reviewer",
        confidence=0.95,
    )


def wrong_amount_rule(f: DisputeFacts) -> RuleOutcome:
    if f.overcharge is None:
        return RuleOutcome(
            action=Action.ESCALATE,
            citations=["POL-006 §1"],
            reason="the charge is not a plan charge, so there is no contracted price to compare with",
            confidence=0.5,
            decided=False,
        )
    if f.overcharge <= 0:
        return RuleOutcome(
            action=Action.DENY,
            citations=["POL-006 §2"],
            reason=f"charged {f.charge_amount}, not above the contracted {f.contracted_price}",
            confidence=0.86,
        )
    amount = _refund_limit(f, f.overcharge)
    return RuleOutcome(
        action=Action.PARTIAL_REFUND,
        amount=amount,
        citations=["POL-006 §2"],
        reason=f"charged {f.charge_amount} against a contracted {f.contracted_price}: the difference is refunded",
        confidence=0.92,
    )


def late_fee_rule(f: DisputeFacts) -> RuleOutcome:
    if f.charge_kind != "late_fee" or f.charge_amount is None:
        return RuleOutcome(
            action=Action.ESCALATE,
            citations=["POL-007 §1"],
            reason="the disputed charge is not a late fee",
            confidence=0.5,
            decided=False,
        )
    if f.late_fees_prior_12m == 0 and f.standing == "good":
        amount = _refund_limit(f, f.charge_amount)
        return RuleOutcome(
            action=_refund(amount, f),
            amount=amount,
            citations=["POL-007 §2", "POL-007 §3"],
            reason="first late fee in 12 months on an account in good standing",
            confidence=0.93,
        )
    why = (
        f"{f.late_fees_prior_12m} earlier late fee(s) in the 12 months before"
        if f.late_fees_prior_12m
        else f"the account is {f.standing.replace('_', ' ')}, not in good standing"
    )
    return RuleOutcome(action=Action.DENY, citations=["POL-007 §2"], reason=why, confidence=0.88)


def product_not_received_rule(f: DisputeFacts) -> RuleOutcome:
    status, days = f.fulfillment_status, f.days_since_charge or 0
    if status == "delivered":
        return RuleOutcome(
            action=Action.DENY,
            citations=["POL-001 §6"],
            reason="the fulfilment record confirms delivery",
            confidence=0.85,
        )
    if status in ("not_delivered", "pending", "shipped") and f.charge_amount is not None:
        if days >= DELIVERY_WINDOW_DAYS:
            amount = _refund_limit(f, f.charge_amount)
            return RuleOutcome(
                action=_refund(amount, f),
                amount=amount,
                citations=["POL-001 §6"],
                reason=f"not delivered {days} days after the charge",
                confidence=0.9,
            )
        return RuleOutcome(
            action=Action.DENY,
            citations=["POL-001 §6"],
            reason=f"only {days} day(s) since the charge, still inside the {DELIVERY_WINDOW_DAYS}-day delivery window",
            confidence=0.8,
        )
    return RuleOutcome(
        action=Action.ESCALATE,
        citations=["POL-001 §6"],
        reason="the charge has no fulfilment record to check",
        confidence=0.5,
        decided=False,
    )


def general_rule(f: DisputeFacts) -> RuleOutcome:
    if f.segment == Segment.ENTERPRISE and f.monthly_fee is not None:
        credit = cents(min(f.monthly_fee * GOODWILL_SHARE, f.disputed_amount))
        return RuleOutcome(
            action=Action.CREDIT,
            amount=credit,
            citations=["POL-008 §2"],
            reason=f"enterprise goodwill credit of {GOODWILL_SHARE:.0%} of the {f.monthly_fee} monthly fee",
            confidence=0.75,
        )
    return RuleOutcome(
        action=Action.ESCALATE,
        citations=["POL-008 §3", "POL-001 §7"],
        reason="a general complaint that no specific policy covers needs a reviewer's judgement",
        confidence=0.5,
        decided=False,
    )
