"""Hard limits that hold whatever a provider proposes: a model, the rules engine or a cache.

Dispute text is untrusted and a model can be talked into anything, so these run on every
proposal, after the provider and before anything is saved.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

from dispute_platform.domain import defaults
from dispute_platform.domain.dispute_types import dispute_type_spec
from dispute_platform.domain.facts import cents
from dispute_platform.domain.models import Action, EnrichedContext, ResolutionProposal
from dispute_platform.domain.money import DEFAULT_USD_RATES, above_threshold, usd_value

ZERO = Decimal("0")


class GuardrailLimits(BaseModel):
    # POL-001 §4: above this (in USD) a proposal is escalated, never refunded automatically.
    escalation_threshold: Decimal = defaults.ESCALATION_THRESHOLD_USD
    usd_rates: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_USD_RATES))


def apply_guardrails(
    proposal: ResolutionProposal,
    context: EnrichedContext,
    limits: GuardrailLimits | None = None,
) -> ResolutionProposal:
    """Return the proposal clipped to what the dispute allows, with a flag for every change."""
    limits = limits or GuardrailLimits()
    case = context.crm.case
    verdict = context.verdict
    flags = list(proposal.flags)
    action = proposal.action
    amount = cents(max(ZERO, proposal.amount))

    if proposal.amount < 0:
        flags.append("negative_amount_zeroed")
    if proposal.currency != case.currency:
        flags.append(f"currency_corrected:{proposal.currency}->{case.currency}")

    if not verdict.valid:
        flags.append("invalid_dispute")
        action, amount = Action.DENY, ZERO

    if amount > case.amount:
        flags.append(f"amount_capped_to_disputed:{amount}->{case.amount}")
        amount = case.amount
    if action.is_refund:
        refundable = verdict.refundable_amount
        if refundable is None:
            flags.append("no_charge_to_refund")
            action = Action.ESCALATE
        elif amount > refundable:
            flags.append(f"amount_capped_to_refundable:{amount}->{refundable}")
            amount = refundable
    if action.moves_money and amount == ZERO:
        flags.append("zero_amount_denied")
        action = Action.DENY
    spec = dispute_type_spec(case.dispute_type)
    if action.moves_money and spec is not None and spec.money_needs_escalation:
        flags.append(f"{spec.dispute_type.value}_requires_escalation")  # unauthorized_requires_escalation
        action = Action.ESCALATE
    if action.moves_money and above_threshold(amount, case.currency, limits.escalation_threshold, limits.usd_rates):
        if usd_value(amount, case.currency, limits.usd_rates) is None:
            flags.append(f"no_fx_rate:{case.currency}")
        flags.append("above_approval_threshold")
        action = Action.ESCALATE
    if action == Action.DENY:
        amount = ZERO

    return proposal.model_copy(update={"action": action, "amount": amount, "currency": case.currency, "flags": flags})
