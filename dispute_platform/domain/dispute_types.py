"""One place per dispute type: everything the platform's policy knows about each kind of dispute.

An entry names the facts its policy turns on (shown to a model beside the common ones), the
rule that decides it (domain/rules.py), the policy categories worth retrieving for it, how
validation treats it and whether the guardrails let money move for it without a person.
Validation, facts, the rules engine, retrieval and the guardrails read this table and keep none
of their own, so adding a dispute type is one entry here (and a `DisputeType` member; a policy
section too if no existing one covers it). A type that is no `DisputeType` is unknown:
`dispute_type_spec` returns None, and each reader says what unknown means (validation rejects
it, the rules escalate it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dispute_platform.domain.dispute_facts import DisputeFacts
from dispute_platform.domain.models import DisputeType
from dispute_platform.domain.rules import (
    RuleOutcome,
    cancellation_refund_rule,
    duplicate_charge_rule,
    general_rule,
    late_fee_rule,
    product_not_received_rule,
    service_outage_rule,
    unauthorized_rule,
    wrong_amount_rule,
)

PolicyRule = Callable[[DisputeFacts], RuleOutcome]


@dataclass(frozen=True)
class DisputeTypeSpec:
    dispute_type: DisputeType
    # The policy rule that decides a dispute of this type (domain/rules.py).
    rule: PolicyRule
    # DisputeFacts fields the rule turns on, shown to a model beside facts.COMMON_FACTS.
    facts: tuple[str, ...]
    # Policy categories (the "Category:" of a policy document) retrieved for this type.
    policy_categories: tuple[str, ...]
    # Validation: whether the dispute window (validation.DISPUTE_WINDOW_DAYS) applies.
    dispute_window: bool = True
    # Validation: whether a dispute with no matching charge is still valid.
    charge_optional: bool = False
    # Validation: whether, when the CRM names no charge, the most likely one may be guessed.
    guess_charge: bool = True
    # Guardrails: whether every money-moving proposal escalates to a person.
    money_needs_escalation: bool = False


DISPUTE_TYPE_SPECS: tuple[DisputeTypeSpec, ...] = (
    DisputeTypeSpec(
        DisputeType.DUPLICATE_CHARGE,
        rule=duplicate_charge_rule,
        facts=("duplicate_of",),
        policy_categories=("duplicate_charge", "general"),
    ),
    DisputeTypeSpec(
        DisputeType.SERVICE_OUTAGE,
        rule=service_outage_rule,
        facts=("outage_hours", "monthly_fee", "billing_period"),
        policy_categories=("service_outage", "goodwill", "general"),
    ),
    DisputeTypeSpec(
        DisputeType.CANCELLATION_REFUND,
        rule=cancellation_refund_rule,
        facts=("days_to_cancel_request", "billing_period"),
        policy_categories=("cancellation_refund", "general"),
    ),
    DisputeTypeSpec(
        DisputeType.UNAUTHORIZED,
        rule=unauthorized_rule,
        facts=(),
        policy_categories=("unauthorized", "general"),
        # The card networks give cardholders long to notice fraud (POL-005).
        dispute_window=False,
        # Always the fraud team and a reviewer (POL-005 §2), whatever a provider proposes.
        money_needs_escalation=True,
    ),
    DisputeTypeSpec(
        DisputeType.WRONG_AMOUNT,
        rule=wrong_amount_rule,
        facts=("contracted_price", "overcharge"),
        policy_categories=("wrong_amount", "general"),
    ),
    DisputeTypeSpec(
        DisputeType.LATE_FEE,
        rule=late_fee_rule,
        facts=("standing", "late_fees_prior_12m"),
        policy_categories=("late_fee", "general"),
    ),
    DisputeTypeSpec(
        DisputeType.PRODUCT_NOT_RECEIVED,
        rule=product_not_received_rule,
        facts=("fulfillment_status",),
        policy_categories=("general",),  # POL-001 §6 is its rule
    ),
    DisputeTypeSpec(
        DisputeType.GENERAL,
        rule=general_rule,
        facts=("monthly_fee",),
        policy_categories=("goodwill", "general"),
        # A general complaint need not be about one charge: it names its charge or is about
        # none, and none is ever guessed for it.
        charge_optional=True,
        guess_charge=False,
    ),
)

DISPUTE_TYPES: Mapping[DisputeType, DisputeTypeSpec] = MappingProxyType({spec.dispute_type: spec for spec in DISPUTE_TYPE_SPECS})


def dispute_type_spec(dispute_type: str) -> DisputeTypeSpec | None:
    """The entry for a dispute type as the CRM spells it, or None for a type the platform does
    not know."""
    try:
        return DISPUTE_TYPES[DisputeType(dispute_type)]
    except ValueError:
        return None
