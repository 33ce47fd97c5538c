"""The dispute-type registry (domain/dispute_types.py): one entry per type, naming only facts,
policies and sections that exist; what it says for today's types is what the five tables it
replaced said; and the modules that used to keep those tables now follow the registry."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from dispute_platform.domain import dispute_types
from dispute_platform.domain.dispute_facts import DisputeFacts
from dispute_platform.domain.dispute_types import DISPUTE_TYPE_SPECS, DISPUTE_TYPES, DisputeTypeSpec, dispute_type_spec
from dispute_platform.domain.facts import COMMON_FACTS, derive_facts, facts_as_lines
from dispute_platform.domain.guardrails import apply_guardrails
from dispute_platform.domain.knowledge import POLICY_CATEGORIES
from dispute_platform.domain.models import Action, DisputeType, ResolutionProposal
from dispute_platform.domain.policies import PolicyChunk, load_policy_chunks
from dispute_platform.domain.precedent import apply_policy_rules
from dispute_platform.domain.validation import find_disputed_charge, validate_dispute
from dispute_platform.domain.world import SandboxWorld
from dispute_platform_tests.domain import factories as f
from dispute_platform_tests.domain.test_sandbox_world import context_for

POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"

# What the tables the registry replaced said (facts.TYPE_FACTS and knowledge.POLICY_CATEGORIES
# before the registry; validation's and guardrails' special cases below). A new type need not be
# added here; a change to one of these types' entries is a change of behaviour.
FORMER_TYPE_FACTS = {
    "duplicate_charge": ("duplicate_of",),
    "service_outage": ("outage_hours", "monthly_fee", "billing_period"),
    "cancellation_refund": ("days_to_cancel_request", "billing_period"),
    "unauthorized": (),
    "wrong_amount": ("contracted_price", "overcharge"),
    "late_fee": ("standing", "late_fees_prior_12m"),
    "product_not_received": ("fulfillment_status",),
    "general": ("monthly_fee",),
}
FORMER_POLICY_CATEGORIES = {
    "duplicate_charge": ["duplicate_charge", "general"],
    "service_outage": ["service_outage", "goodwill", "general"],
    "cancellation_refund": ["cancellation_refund", "general"],
    "unauthorized": ["unauthorized", "general"],
    "wrong_amount": ["wrong_amount", "general"],
    "late_fee": ["late_fee", "general"],
    "product_not_received": ["general"],
    "general": ["goodwill", "general"],
}
# (dispute window applies, charge optional, charge may be guessed, money needs escalation)
FORMER_TRAITS = {t: (True, False, True, False) for t in FORMER_TYPE_FACTS} | {
    "unauthorized": (False, False, True, True),
    "general": (True, True, False, False),
}


@pytest.fixture(scope="module")
def chunks() -> list[PolicyChunk]:
    return load_policy_chunks(POLICIES_DIR)


# -- the registry itself ------------------------------------------------------------------------


def test_every_dispute_type_has_exactly_one_entry():
    counts = Counter(spec.dispute_type for spec in DISPUTE_TYPE_SPECS)
    assert set(counts) == set(DisputeType)
    assert [t for t, n in counts.items() if n > 1] == []
    assert all(DISPUTE_TYPES[t].dispute_type == t for t in DisputeType)


def test_entries_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DISPUTE_TYPES[DisputeType.GENERAL].charge_optional = False  # type: ignore[misc]


@pytest.mark.parametrize("spec", DISPUTE_TYPE_SPECS, ids=lambda s: s.dispute_type.value)
def test_an_entry_names_only_facts_that_exist_once_each(spec: DisputeTypeSpec):
    assert set(spec.facts) <= set(DisputeFacts.model_fields)
    assert len(set(spec.facts)) == len(spec.facts)
    assert not set(spec.facts) & set(COMMON_FACTS), "already shown for every type"


@pytest.mark.parametrize("spec", DISPUTE_TYPE_SPECS, ids=lambda s: s.dispute_type.value)
def test_an_entry_retrieves_only_policy_categories_that_exist(spec: DisputeTypeSpec, chunks):
    categories = {chunk.category for chunk in chunks}
    assert spec.policy_categories, "every dispute retrieves some policy"
    assert set(spec.policy_categories) <= categories
    assert "general" in spec.policy_categories, "the general policy (limits, thresholds) applies to every dispute"


def test_what_a_rule_cites_exists_and_is_retrieved_for_its_type(chunks):
    """Every open case of the sandbox world (built to exercise every rule branch): the sections its
    type's rule cites exist, in a policy whose category is retrieved for that type."""
    category_of = {chunk.citation: chunk.category for chunk in chunks}
    world = SandboxWorld.load()
    seen: set[DisputeType] = set()
    for case in world.cases:
        spec = dispute_type_spec(case.dispute_type)
        if spec is None:
            continue
        seen.add(spec.dispute_type)
        outcome = spec.rule(derive_facts(context_for(world, case.case_id)))
        for citation in outcome.citations:
            assert citation in category_of, f"{case.case_id}: {citation} is no policy section"
            assert category_of[citation] in spec.policy_categories, f"{case.case_id}: {citation}"
    assert seen == set(DisputeType)


@pytest.mark.parametrize("name", ["chargeback", "", "GENERAL", " general"])
def test_an_unknown_type_has_no_entry(name):
    assert dispute_type_spec(name) is None


def test_a_known_type_is_found_by_its_crm_spelling():
    assert dispute_type_spec("late_fee") is DISPUTE_TYPES[DisputeType.LATE_FEE]


# -- today's types behave as before -------------------------------------------------------------


def test_the_entries_say_what_the_former_tables_said():
    for name, facts in FORMER_TYPE_FACTS.items():
        spec = DISPUTE_TYPES[DisputeType(name)]
        assert spec.facts == facts, name
        assert list(spec.policy_categories) == FORMER_POLICY_CATEGORIES[name], name
        traits = (spec.dispute_window, spec.charge_optional, spec.guess_charge, spec.money_needs_escalation)
        assert traits == FORMER_TRAITS[name], name


def test_policy_categories_is_still_the_table_retrieval_reads():
    assert {str(t): v for t, v in POLICY_CATEGORIES.items()} == FORMER_POLICY_CATEGORIES
    assert POLICY_CATEGORIES.get("late_fee") == ["late_fee", "general"]  # looked up by the CRM's string
    assert POLICY_CATEGORIES.get("chargeback") is None


def _all_facts(dispute_type: str) -> DisputeFacts:
    """Facts with every field known, so a prompt line shows exactly the ones asked for."""
    return DisputeFacts(
        dispute_type=dispute_type, segment="smb", standing="good", disputed_amount=Decimal("10"), currency="USD",
        charge_id="ch_1", charge_amount=Decimal("10"), charge_kind="subscription", refundable=Decimal("10"),
        billing_period="monthly", monthly_fee=Decimal("10"), contracted_price=Decimal("9"), overcharge=Decimal("1"),
        duplicate_of="ch_2", outage_hours=Decimal("2"), days_to_cancel_request=3, late_fees_prior_12m=0,
        fulfillment_status="shipped", days_since_charge=4,
    )  # fmt: skip


@pytest.mark.parametrize("name", [*FORMER_TYPE_FACTS, "chargeback"])
def test_prompt_facts_are_the_common_ones_then_the_types(name):
    names = [line.split(":", 1)[0] for line in facts_as_lines(_all_facts(name))]
    assert names == [*COMMON_FACTS, *FORMER_TYPE_FACTS.get(name, ())]


# -- the readers follow the registry, and keep no table of their own -------------------------------


@pytest.fixture
def edit_entry(monkeypatch):
    """Change one entry of the registry for the test."""

    def edit(dispute_type: DisputeType, **changes) -> None:
        entries = dict(DISPUTE_TYPES)
        entries[dispute_type] = dataclasses.replace(entries[dispute_type], **changes)
        monkeypatch.setattr(dispute_types, "DISPUTE_TYPES", entries)

    return edit


@pytest.mark.parametrize("spec", DISPUTE_TYPE_SPECS, ids=lambda s: s.dispute_type.value)
def test_the_rules_engine_runs_the_entrys_rule(spec: DisputeTypeSpec, edit_entry):
    facts = _all_facts(spec.dispute_type.value)
    assert apply_policy_rules(facts) == spec.rule(facts)
    other = DISPUTE_TYPES[DisputeType.UNAUTHORIZED if spec.dispute_type != DisputeType.UNAUTHORIZED else DisputeType.GENERAL]
    edit_entry(spec.dispute_type, rule=other.rule)
    assert apply_policy_rules(facts) == other.rule(facts)


def test_the_prompt_shows_the_entrys_facts(edit_entry):
    edit_entry(DisputeType.DUPLICATE_CHARGE, facts=("outage_hours",))
    names = [line.split(":", 1)[0] for line in facts_as_lines(_all_facts("duplicate_charge"))]
    assert names == [*COMMON_FACTS, "outage_hours"]


def test_validation_applies_the_window_as_the_entry_says(edit_entry):
    def outside_window() -> bool:
        crm = f.crm(opened_at=f.CHARGE_AT + timedelta(days=400))
        verdict = validate_dispute(f.event(), crm, f.billing(), f.payments(f.charge()))
        return "outside_window" in [issue.code for issue in verdict.issues]

    assert outside_window()
    edit_entry(DisputeType.DUPLICATE_CHARGE, dispute_window=False)
    assert not outside_window()


def test_validation_accepts_a_missing_charge_as_the_entry_says(edit_entry):
    def charge_not_found() -> bool:
        verdict = validate_dispute(f.event(), f.crm(charge_id=None), f.billing(), f.payments())
        return "charge_not_found" in [issue.code for issue in verdict.issues]

    assert charge_not_found()
    edit_entry(DisputeType.DUPLICATE_CHARGE, charge_optional=True)
    assert not charge_not_found()


def test_a_charge_is_guessed_only_where_the_entry_allows_it(edit_entry):
    crm, payments = f.crm(charge_id=None), f.payments(f.charge())
    assert find_disputed_charge(crm, payments) is not None
    edit_entry(DisputeType.DUPLICATE_CHARGE, guess_charge=False)
    assert find_disputed_charge(crm, payments) is None


def test_the_guardrails_escalate_money_as_the_entry_says(edit_entry):
    proposal = ResolutionProposal(
        action=Action.CREDIT, amount=Decimal("50.00"), currency="USD", confidence=0.9, reasoning="test",
        model="test-model", provider="test", prompt_version="t1",
    )  # fmt: skip
    assert apply_guardrails(proposal, f.context()).action == Action.CREDIT
    edit_entry(DisputeType.DUPLICATE_CHARGE, money_needs_escalation=True)
    guarded = apply_guardrails(proposal, f.context())
    assert guarded.action == Action.ESCALATE
    assert "duplicate_charge_requires_escalation" in guarded.flags
