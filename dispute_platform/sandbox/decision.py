"""The decision the rules make for a case (rules, then guardrails): used to check scenarios, write the table and the history."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from dispute_platform.domain.context import enrich
from dispute_platform.domain.facts import DisputeFacts, derive_facts
from dispute_platform.domain.guardrails import apply_guardrails
from dispute_platform.domain.models import (
    BillingRecord,
    Case,
    CrmRecord,
    DisputeEvent,
    EnrichedContext,
    PaymentRecord,
    ResolutionProposal,
)
from dispute_platform.domain.precedent import ENGINE_MODEL, RuleOutcome, apply_policy_rules
from dispute_platform.domain.world import SandboxWorld


@dataclass(frozen=True)
class Decision:
    valid: bool
    issues: tuple[str, ...]
    action: str
    amount: Decimal
    outcome: RuleOutcome
    facts: DisputeFacts
    flags: tuple[str, ...]


def decide(context: EnrichedContext) -> Decision:
    """What the offline engine proposes for a dispute: `apply_policy_rules` on its facts, then
    `apply_guardrails` (which denies an invalid dispute and escalates above $1,000.00)."""
    facts = derive_facts(context)
    outcome = apply_policy_rules(facts)
    proposal = ResolutionProposal(
        action=outcome.action,
        amount=outcome.amount,
        currency=context.crm.case.currency,
        confidence=outcome.confidence,
        reasoning=outcome.reason,
        cited_policies=outcome.citations,
        model=ENGINE_MODEL,
        provider="rules",
        prompt_version="sandbox-build",
    )
    final = apply_guardrails(proposal, context)
    return Decision(
        valid=context.verdict.valid,
        issues=tuple(i.code for i in context.verdict.issues),
        action=final.action.value,
        amount=final.amount,
        outcome=outcome,
        facts=facts,
        flags=tuple(final.flags),
    )


def records_for(world: SandboxWorld, case_id: str) -> tuple[CrmRecord, BillingRecord, PaymentRecord]:
    """What the sandbox CRM, billing and payment providers return for a case."""
    case = world.cases_by_id[case_id]
    account = world.accounts_by_id[case.customer_id]
    cid = case.customer_id
    charges = world.charges_by_customer.get(cid, [])
    ids = {c.charge_id for c in charges}
    return (
        CrmRecord(case=case, account=account, incidents=world.incidents_for(account)),
        BillingRecord(subscription=world.subscription_for(cid), invoices=world.invoices_by_customer.get(cid, [])),
        PaymentRecord(charges=charges, refunds=world.refunds_for(ids), disputes=world.disputes_for(ids)),
    )


def event_for_case(case: Case) -> DisputeEvent:
    """The event a well-behaved producer would send for a case."""
    return DisputeEvent(
        case_id=case.case_id,
        customer_id=case.customer_id,
        event_id=f"evt-{case.case_id}",
        dispute_type=case.dispute_type,
        amount=case.amount,
        currency=case.currency,
        description=case.description,
        occurred_at=case.opened_at,
    )


def decide_world_case(world: SandboxWorld, case_id: str, event: DisputeEvent | None = None) -> Decision:
    crm, billing, payments = records_for(world, case_id)
    return decide(enrich(event or event_for_case(crm.case), crm, billing, payments))
