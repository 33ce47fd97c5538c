"""Facts derived from a dispute's context: the figures the policies turn on.

Both the precedent engine and the prompt builder use them, so a model and the rules look at
the same numbers (outage hours, days to cancellation, earlier late fees ...).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from dispute_platform.domain.dispute_facts import CENT as CENT
from dispute_platform.domain.dispute_facts import PLAN_CHARGE_KINDS as PLAN_CHARGE_KINDS
from dispute_platform.domain.dispute_facts import DisputeFacts as DisputeFacts
from dispute_platform.domain.dispute_facts import cents as cents
from dispute_platform.domain.dispute_facts import months_used as months_used
from dispute_platform.domain.dispute_types import dispute_type_spec
from dispute_platform.domain.models import Charge, EnrichedContext
from dispute_platform.domain.validation import utc_date

COMMON_FACTS = (
    "dispute_type", "segment", "disputed_amount", "currency", "charge_id", "charge_amount", "charge_kind",
    "refundable", "days_since_charge",
)  # fmt: skip


def facts_as_lines(facts: DisputeFacts) -> list[str]:
    """Compact `name: value` lines for a prompt: the facts this dispute type turns on, known
    ones only (every token here is paid for on every dispute)."""
    spec = dispute_type_spec(facts.dispute_type)
    wanted = COMMON_FACTS + (spec.facts if spec is not None else ())
    values = facts.model_dump(mode="json")
    return [f"{name}: {values[name]}" for name in wanted if values.get(name) is not None]


def _duplicate_partner(disputed: Charge, charges: list[Charge]) -> Charge | None:
    """Another settled charge of the same amount and kind for the same invoice or the same
    period (POL-002 §1), earlier or later: either way the customer paid twice. A late fee or a
    split payment on the same invoice is not a duplicate."""
    plan_kinds = set(PLAN_CHARGE_KINDS)

    def same_kind(a: Charge, b: Charge) -> bool:
        return a.kind == b.kind or (a.kind in plan_kinds and b.kind in plan_kinds)

    for other in sorted(charges, key=lambda c: c.created_at):
        if other.charge_id == disputed.charge_id or other.status != "succeeded":
            continue
        if other.amount != disputed.amount or not same_kind(other, disputed):
            continue
        same_invoice = disputed.invoice_id is not None and other.invoice_id == disputed.invoice_id
        same_period = disputed.period_start is not None and other.period_start == disputed.period_start
        if same_invoice or same_period:
            return other
    return None


def _outage_hours(context: EnrichedContext, charge: Charge | None) -> Decimal:
    """Unscheduled outage hours inside the disputed charge's billing period (or, without one,
    the 31 days before the case): only the part of each incident within the period counts."""
    if charge is not None and charge.period_start and charge.period_end:
        start_day, end_day = charge.period_start, charge.period_end
    else:
        end_day = context.crm.case.opened_at.date()
        start_day = end_day - timedelta(days=31)
    period_start = datetime.combine(start_day, time.min, tzinfo=UTC)
    period_end = datetime.combine(end_day + timedelta(days=1), time.min, tzinfo=UTC)
    seconds = 0.0
    for incident in context.crm.incidents:
        if incident.scheduled_maintenance:
            continue
        started = _aware(incident.started_at)
        ended = _aware(incident.ended_at)
        overlap = (min(ended, period_end) - max(started, period_start)).total_seconds()
        seconds += max(0.0, overlap)
    return (Decimal(str(seconds)) / Decimal(3600)).quantize(CENT)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def derive_facts(context: EnrichedContext) -> DisputeFacts:
    case, account = context.crm.case, context.crm.account
    charge = context.disputed_charge
    subscription = context.billing.subscription
    plan = subscription.plan if subscription else None
    facts = DisputeFacts(
        dispute_type=case.dispute_type,
        segment=account.segment.value,
        standing=account.standing,
        disputed_amount=case.amount,
        currency=case.currency,
        days_since_charge=context.verdict.days_since_charge,
        billing_period=plan.billing_period if plan else None,
        monthly_fee=plan.monthly_fee if plan else None,
        contracted_price=plan.price if plan else None,
    )
    if charge is None:
        return facts
    facts.charge_id = charge.charge_id
    facts.charge_amount = charge.amount
    facts.charge_kind = charge.kind
    facts.refundable = charge.refundable
    facts.fulfillment_status = charge.fulfillment_status
    duplicate = _duplicate_partner(charge, context.payments.charges)
    facts.duplicate_of = duplicate.charge_id if duplicate else None
    facts.outage_hours = _outage_hours(context, charge)
    if plan is not None and charge.kind in PLAN_CHARGE_KINDS:
        facts.overcharge = charge.amount - plan.price
    # Cancellation windows run from a plan (renewal) charge; other charges have none.
    if subscription is not None and subscription.cancel_requested_at is not None and charge.kind in PLAN_CHARGE_KINDS:
        facts.days_to_cancel_request = (utc_date(subscription.cancel_requested_at) - utc_date(charge.created_at)).days
    if charge.kind == "late_fee":
        window_start = charge.created_at - timedelta(days=365)
        facts.late_fees_prior_12m = sum(
            1
            for c in context.payments.charges
            if c.kind == "late_fee"
            and c.charge_id != charge.charge_id
            and c.status == "succeeded"
            and window_start <= c.created_at < charge.created_at
        )
    return facts
