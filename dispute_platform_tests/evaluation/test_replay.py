"""A complaint replayed as a dispute: the synthetic context is valid and says only what the
complaint says. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from dispute_platform.datasets.cfpb import CfpbComplaint
from dispute_platform.domain.facts import derive_facts
from dispute_platform.domain.precedent import apply_policy_rules
from dispute_platform.domain.prompt import build_prompt
from dispute_platform.evaluation.replay import NOMINAL_AMOUNT, complaint_context, dispute_amount


def complaint(**overrides) -> CfpbComplaint:
    fields = dict(
        row=1,
        line=2,
        complaint_id="777",
        date_received=datetime(2025, 9, 1, 15, 0, tzinfo=UTC),
        issue="Fees or interest",
        sub_issue="Problem with fees",
        narrative="They charged me a late fee of {$39.00} although I paid on time. Card 4111111111111111.",
        company_response="Closed with monetary relief",
    )
    return CfpbComplaint(**(fields | overrides))


def test_a_late_fee_complaint_becomes_a_valid_late_fee_dispute():
    ctx = complaint_context(complaint())
    assert ctx.verdict.valid, ctx.verdict.summary
    case = ctx.crm.case
    assert (case.case_id, case.dispute_type, case.amount) == ("CFPB-777", "late_fee", Decimal("39.00"))
    assert ctx.disputed_charge is not None and ctx.disputed_charge.kind == "late_fee"
    assert ctx.verdict.days_since_charge == 10
    assert "4111111111111111" not in case.description and "[CARD ****1111]" in case.description
    assert ctx.crm.account.segment.value == "smb" and ctx.billing.subscription is None
    # The rules see a first late fee on an account in good standing.
    assert apply_policy_rules(derive_facts(ctx)).action.value == "full_refund"


def test_no_clear_amount_means_the_nominal_one_and_no_date_a_fixed_one():
    c = complaint(narrative="They charged {$10.00} and {$20.00}", date_received=None, issue="Other", sub_issue="")
    amount, nominal = dispute_amount(c)
    assert (amount, nominal) == (NOMINAL_AMOUNT, True)
    ctx = complaint_context(c)
    assert ctx.verdict.valid and ctx.crm.case.dispute_type == "general"
    assert ctx.crm.case.opened_at.year == 2025


def test_an_unauthorized_claim_goes_to_a_person_and_a_long_narrative_fits_the_prompt():
    c = complaint(
        issue="Problem with a purchase shown on your statement",
        sub_issue="Card was charged for something you did not purchase with the card",
        narrative="I did not make these purchases. " * 3000,
    )
    ctx = complaint_context(c)
    assert ctx.crm.case.dispute_type == "unauthorized"
    assert apply_policy_rules(derive_facts(ctx)).action.value == "escalate"
    prompt = build_prompt(ctx, derive_facts(ctx), [], [])
    assert prompt.input_tokens <= 2075 and "description" in prompt.trimmed
