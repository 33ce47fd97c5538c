"""Every policy rule of the offline engine at its boundaries (POL-001 to POL-008), the guardrails
that hold whatever a provider proposes, and how precedent weighs on confidence."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispute_platform.domain.facts import derive_facts, months_used
from dispute_platform.domain.guardrails import GuardrailLimits, apply_guardrails
from dispute_platform.domain.models import Action, ResolutionProposal
from dispute_platform.domain.precedent import (
    ENGINE_MODEL,
    RuleOutcome,
    apply_policy_rules,
    outage_credit_share,
    weigh_precedent,
)
from dispute_platform.domain.prompt import build_prompt
from dispute_platform.resources.llm import PrecedentProposer
from dispute_platform_tests.domain import factories as f

D = Decimal


def decide(**kwargs) -> RuleOutcome:
    context = f.context(**kwargs)
    assert context.verdict.valid, context.verdict.summary  # the rules only ever see valid disputes
    return apply_policy_rules(derive_facts(context))


# -- POL-002 duplicate charges -------------------------------------------------------------------


def test_duplicate_on_the_same_invoice_refunds_the_later_charge_in_full():
    first = f.charge("ch_first", invoice_id="in_9", created_at=f.CHARGE_AT)
    later = f.charge("ch_later", invoice_id="in_9", created_at=f.CHARGE_AT + timedelta(minutes=3))
    context = f.context(dispute_type="duplicate_charge", charges=[first, later], charge_id="ch_later")
    facts = derive_facts(context)
    assert facts.duplicate_of == "ch_first"
    outcome = apply_policy_rules(facts)
    assert (outcome.action, outcome.amount) == (Action.FULL_REFUND, D("120.00"))
    assert outcome.citations == ["POL-002 §2"]


def test_duplicate_for_the_same_period_and_amount_on_another_invoice_is_refunded():
    first = f.charge("ch_first", invoice_id="in_1", created_at=f.CHARGE_AT)
    later = f.charge("ch_later", invoice_id="in_2", created_at=f.CHARGE_AT + timedelta(days=1))
    outcome = decide(dispute_type="duplicate_charge", charges=[first, later], charge_id="ch_later")
    assert (outcome.action, outcome.amount) == (Action.FULL_REFUND, D("120.00"))


def test_duplicate_refund_is_limited_to_the_disputed_amount():
    first = f.charge("ch_first", invoice_id="in_9", created_at=f.CHARGE_AT)
    later = f.charge("ch_later", invoice_id="in_9", created_at=f.CHARGE_AT + timedelta(hours=1))
    outcome = decide(dispute_type="duplicate_charge", charges=[first, later], charge_id="ch_later", amount=D("80.00"))
    assert (outcome.action, outcome.amount) == (Action.PARTIAL_REFUND, D("80.00"))


@pytest.mark.parametrize(
    "other",
    [
        # Same period, different amount, different invoice: an onboarding package, not a duplicate.
        f.charge("ch_other", invoice_id="in_2", amount=D("300.00"), kind="one_time", created_at=f.CHARGE_AT - timedelta(days=1)),
        # Same invoice but the earlier attempt failed: no money was taken twice.
        f.charge("ch_other", invoice_id="in_ch_1", status="failed", created_at=f.CHARGE_AT - timedelta(hours=1)),
        # Another period entirely.
        f.charge(
            "ch_other",
            invoice_id="in_0",
            period_start=date(2025, 5, 1),
            period_end=date(2025, 5, 31),
            created_at=f.CHARGE_AT - timedelta(days=31),
        ),
    ],
    ids=["different_amount_and_invoice", "failed_attempt", "previous_period"],
)
def test_no_duplicate_is_denied(other):
    outcome = decide(dispute_type="duplicate_charge", charges=[other, f.charge()], charge_id="ch_1")
    assert (outcome.action, outcome.amount) == (Action.DENY, D("0"))
    assert outcome.citations == ["POL-002 §3"]


# -- POL-003 service outage ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "share"),
    [
        ("0", "0"), ("0.5", "0"), ("0.99", "0"), ("1", "0.10"), ("3.99", "0.10"), ("4", "0.10"),
        ("4.01", "0.25"), ("24", "0.25"), ("24.01", "0.50"), ("720", "0.50"),
    ],
)  # fmt: skip
def test_outage_credit_share_schedule(hours, share):
    assert outage_credit_share(D(hours)) == D(share)


IN_PERIOD = datetime(2025, 6, 10, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hours", "action", "amount"),
    [
        ("0.5", Action.DENY, "0"),
        ("1", Action.CREDIT, "12.00"),
        ("3.99", Action.CREDIT, "12.00"),
        ("4", Action.CREDIT, "12.00"),
        ("4.01", Action.CREDIT, "30.00"),
        ("24", Action.CREDIT, "30.00"),
        ("24.01", Action.CREDIT, "60.00"),
    ],
)
def test_outage_credit_on_a_monthly_plan(hours, action, amount):
    outcome = decide(dispute_type="service_outage", incidents=[f.incident(IN_PERIOD, hours)])
    assert (outcome.action, outcome.amount) == (action, D(amount))
    assert outcome.action != Action.FULL_REFUND and outcome.action != Action.PARTIAL_REFUND


def test_outage_hours_of_several_incidents_are_summed():
    incidents = [
        f.incident(IN_PERIOD, "2.5", incident_id="a"),
        f.incident(IN_PERIOD + timedelta(days=5), "2", incident_id="b"),
    ]
    context = f.context(dispute_type="service_outage", incidents=incidents)
    assert derive_facts(context).outage_hours == D("4.50")
    assert apply_policy_rules(derive_facts(context)).amount == D("30.00")


def test_scheduled_maintenance_does_not_count():
    incidents = [
        f.incident(IN_PERIOD, "30", scheduled=True, incident_id="maint"),
        f.incident(IN_PERIOD + timedelta(days=1), "2", incident_id="real"),
    ]
    context = f.context(dispute_type="service_outage", incidents=incidents)
    assert derive_facts(context).outage_hours == D("2.00")
    assert apply_policy_rules(derive_facts(context)).amount == D("12.00")


def test_outages_outside_the_billing_period_do_not_count():
    incidents = [
        f.incident(datetime(2025, 5, 20, 9, 0, tzinfo=UTC), "30", incident_id="before"),
        f.incident(datetime(2025, 7, 2, 9, 0, tzinfo=UTC), "30", incident_id="after"),
        f.incident(IN_PERIOD, "2", incident_id="inside"),
    ]
    context = f.context(dispute_type="service_outage", incidents=incidents)
    assert derive_facts(context).outage_hours == D("2.00")
    assert apply_policy_rules(derive_facts(context)).amount == D("12.00")


def test_outage_credit_on_an_annual_plan_uses_a_twelfth_of_the_price():
    # POL-003 §3.3: $2,400.00 a year, 6 hours of outage -> 25% of $200.00 = $50.00.
    annual = f.subscription(plan=f.plan(plan_id="biz-annual", billing_period="annual", price=D("2400.00")))
    charge = f.charge(amount=D("2400.00"), kind="renewal", period_start=date(2025, 6, 1), period_end=date(2026, 5, 31))
    context = f.context(
        dispute_type="service_outage", sub=annual, charges=[charge], amount=D("2400.00"),
        incidents=[f.incident(IN_PERIOD, "6")],
    )  # fmt: skip
    facts = derive_facts(context)
    assert facts.monthly_fee == D("200.00")
    assert (apply_policy_rules(facts).action, apply_policy_rules(facts).amount) == (Action.CREDIT, D("50.00"))


def test_outage_credit_is_never_above_the_disputed_amount():
    outcome = decide(dispute_type="service_outage", amount=D("20.00"), incidents=[f.incident(IN_PERIOD, "48")])
    assert (outcome.action, outcome.amount) == (Action.CREDIT, D("20.00"))


def test_outage_without_a_subscription_is_escalated():
    outcome = decide(dispute_type="service_outage", no_subscription=True, incidents=[f.incident(IN_PERIOD, "5")])
    assert outcome.action == Action.ESCALATE


# -- POL-004 cancellation ------------------------------------------------------------------------

MONTHLY = f.subscription()
ANNUAL = f.subscription(plan=f.plan(plan_id="team-annual", billing_period="annual", price=D("1200.00")))


def _cancellation(sub, request_at, *, renewal_amount="120.00", charged_at=f.CHARGE_AT):
    renewal = f.charge(amount=D(renewal_amount), kind="renewal", created_at=charged_at)
    subscription = sub.model_copy(update={"cancel_requested_at": request_at})
    return decide(
        dispute_type="cancellation_refund", sub=subscription, charges=[renewal], amount=D(renewal_amount),
        opened_at=max(charged_at, request_at or charged_at) + timedelta(days=1),
    )  # fmt: skip


@pytest.mark.parametrize("day", [0, 1, 14])
@pytest.mark.parametrize(("sub", "amount"), [(MONTHLY, "120.00"), (ANNUAL, "1200.00")], ids=["monthly", "annual"])
def test_cancellation_up_to_day_14_is_refunded_in_full(sub, amount, day):
    outcome = _cancellation(sub, f.CHARGE_AT + timedelta(days=day), renewal_amount=amount)
    assert (outcome.action, outcome.amount) == (Action.FULL_REFUND, D(amount))
    assert outcome.citations == ["POL-004 §2"]


@pytest.mark.parametrize("day", [15, 20, 30])
def test_annual_cancellation_on_day_15_to_30_refunds_eleven_twelfths(day):
    outcome = _cancellation(ANNUAL, f.CHARGE_AT + timedelta(days=day), renewal_amount="1200.00")
    assert (outcome.action, outcome.amount) == (Action.PARTIAL_REFUND, D("1100.00"))
    assert outcome.citations == ["POL-004 §3"]


def test_annual_pro_rata_is_rounded_to_the_cent():
    outcome = _cancellation(ANNUAL, f.CHARGE_AT + timedelta(days=15), renewal_amount="1000.00")
    assert outcome.amount == D("916.67")  # 1000 * 11 / 12 = 916.666...


def test_annual_cancellation_on_day_31_is_denied():
    outcome = _cancellation(ANNUAL, f.CHARGE_AT + timedelta(days=31), renewal_amount="1200.00")
    assert (outcome.action, outcome.amount) == (Action.DENY, D("0"))
    assert outcome.citations == ["POL-004 §4"]


@pytest.mark.parametrize("day", [15, 30])
def test_monthly_cancellation_after_day_14_is_denied(day):
    outcome = _cancellation(MONTHLY, f.CHARGE_AT + timedelta(days=day))
    assert (outcome.action, outcome.amount) == (Action.DENY, D("0"))


@pytest.mark.parametrize(("sub", "amount"), [(MONTHLY, "120.00"), (ANNUAL, "1200.00")], ids=["monthly", "annual"])
def test_cancellation_requested_before_the_renewal_is_refunded_in_full(sub, amount):
    outcome = _cancellation(sub, f.CHARGE_AT - timedelta(days=3), renewal_amount=amount)
    assert (outcome.action, outcome.amount) == (Action.FULL_REFUND, D(amount))


def test_no_cancellation_request_is_denied():
    outcome = _cancellation(MONTHLY, None)
    assert (outcome.action, outcome.amount) == (Action.DENY, D("0"))
    assert "no cancellation request" in outcome.reason


def test_cancellation_days_are_calendar_days_with_the_charge_day_as_day_0():
    # Renewed at 23:50, request 13 days and 20 minutes later, just after midnight: calendar day 14.
    late = datetime(2025, 6, 1, 23, 50, tzinfo=UTC)
    day_14 = _cancellation(MONTHLY, datetime(2025, 6, 15, 0, 10, tzinfo=UTC), charged_at=late)
    assert day_14.action == Action.FULL_REFUND
    day_15 = _cancellation(MONTHLY, datetime(2025, 6, 16, 0, 10, tzinfo=UTC), charged_at=late)
    assert day_15.action == Action.DENY


def test_cancellation_days_do_not_depend_on_the_offsets_the_systems_write():
    renewed = datetime(2025, 6, 2, 4, 30, tzinfo=UTC)
    requested = datetime(2025, 6, 15, 16, 0, tzinfo=UTC)  # 13 UTC calendar days later
    expected = _cancellation(MONTHLY, requested, charged_at=renewed)
    assert expected.action == Action.FULL_REFUND
    for charge_tz, request_tz in [(-5, 9), (9, -5), (-11, 14), (0, 0)]:
        shifted = _cancellation(
            MONTHLY,
            requested.astimezone(timezone(timedelta(hours=request_tz))),
            charged_at=renewed.astimezone(timezone(timedelta(hours=charge_tz))),
        )
        assert (shifted.action, shifted.reason) == (expected.action, expected.reason), (charge_tz, request_tz)


@pytest.mark.parametrize(("days", "used"), [(0, 1), (1, 1), (15, 1), (30, 1), (31, 2), (60, 2), (61, 3)])
def test_each_started_month_counts_as_used(days, used):
    assert months_used(days) == used


# -- POL-005 unauthorized ------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["0.50", "120.00"])
def test_unauthorized_is_always_escalated(amount):
    outcome = decide(dispute_type="unauthorized", amount=D(amount))
    assert outcome.action == Action.ESCALATE
    assert outcome.citations == ["POL-005 §2"]


def test_unauthorized_is_escalated_however_old():
    outcome = decide(dispute_type="unauthorized", opened_at=f.CHARGE_AT + timedelta(days=500))
    assert outcome.action == Action.ESCALATE


# -- POL-006 wrong amount ------------------------------------------------------------------------


def test_overcharge_refunds_the_difference():
    # POL-006 §2.1: $150.00 against a contracted $120.00 -> $30.00.
    outcome = decide(dispute_type="wrong_amount", charges=[f.charge(amount=D("150.00"))], amount=D("150.00"))
    assert (outcome.action, outcome.amount) == (Action.PARTIAL_REFUND, D("30.00"))
    assert outcome.citations == ["POL-006 §2"]


def test_overcharge_refund_is_limited_to_the_disputed_amount():
    outcome = decide(dispute_type="wrong_amount", charges=[f.charge(amount=D("150.00"))], amount=D("10.00"))
    assert (outcome.action, outcome.amount) == (Action.PARTIAL_REFUND, D("10.00"))


def test_overcharge_refund_is_limited_to_what_is_still_refundable():
    charge = f.charge(amount=D("150.00"), amount_refunded=D("130.00"))
    outcome = decide(dispute_type="wrong_amount", charges=[charge], amount=D("20.00"))
    assert outcome.amount == D("20.00")


@pytest.mark.parametrize("charged", ["120.00", "99.00"])
def test_charge_not_above_the_contracted_price_is_denied(charged):
    outcome = decide(dispute_type="wrong_amount", charges=[f.charge(amount=D(charged))], amount=D(charged))
    assert (outcome.action, outcome.amount) == (Action.DENY, D("0"))
    assert "120.00" in outcome.reason and charged in outcome.reason


def test_wrong_amount_on_a_non_plan_charge_is_escalated():
    outcome = decide(dispute_type="wrong_amount", charges=[f.charge(kind="one_time", amount=D("300.00"))], amount=D("300.00"))
    assert outcome.action == Action.ESCALATE


# -- POL-007 late fees ---------------------------------------------------------------------------


def _late_fee(*, earlier: list | None = None, standing: str = "good"):
    fee = f.charge("ch_fee", amount=D("25.00"), kind="late_fee", invoice_id="in_fee", period_start=None, period_end=None)
    return decide(
        dispute_type="late_fee", charges=[*(earlier or []), fee], charge_id="ch_fee", amount=D("25.00"),
        acct=f.account(standing=standing),
    )  # fmt: skip


def _earlier_fee(days_before: int, **overrides):
    return f.charge(
        f"ch_fee_{days_before}", amount=D("25.00"), kind="late_fee", invoice_id=f"in_fee_{days_before}",
        period_start=None, period_end=None, created_at=f.CHARGE_AT - timedelta(days=days_before), **overrides,
    )  # fmt: skip


def test_first_late_fee_in_good_standing_is_refunded():
    outcome = _late_fee()
    assert (outcome.action, outcome.amount) == (Action.FULL_REFUND, D("25.00"))
    assert "POL-007 §2" in outcome.citations


@pytest.mark.parametrize("days_before", [30, 150, 364])
def test_second_late_fee_within_12_months_is_denied(days_before):
    outcome = _late_fee(earlier=[_earlier_fee(days_before)])
    assert (outcome.action, outcome.amount) == (Action.DENY, D("0"))
    assert "1 earlier late fee" in outcome.reason


def test_earlier_fee_13_months_before_does_not_count():
    outcome = _late_fee(earlier=[_earlier_fee(396)])
    assert (outcome.action, outcome.amount) == (Action.FULL_REFUND, D("25.00"))


def test_earlier_failed_late_fee_does_not_count():
    outcome = _late_fee(earlier=[_earlier_fee(60, status="failed")])
    assert outcome.action == Action.FULL_REFUND


@pytest.mark.parametrize("standing", ["past_due", "collections"])
def test_first_late_fee_on_an_account_not_in_good_standing_is_denied(standing):
    outcome = _late_fee(standing=standing)
    assert (outcome.action, outcome.amount) == (Action.DENY, D("0"))
    assert "not in good standing" in outcome.reason


def test_late_fee_dispute_about_a_charge_that_is_no_late_fee_is_escalated():
    outcome = decide(dispute_type="late_fee")
    assert outcome.action == Action.ESCALATE


# -- POL-001 §6 product not received -------------------------------------------------------------


def _purchase(status: str, days: int):
    purchase = f.charge(amount=D("300.00"), kind="one_time", fulfillment_status=status, period_start=None, period_end=None)
    return decide(
        dispute_type="product_not_received", charges=[purchase], amount=D("300.00"),
        opened_at=f.CHARGE_AT + timedelta(days=days),
    )  # fmt: skip


@pytest.mark.parametrize("days", [3, 14, 60])
def test_delivered_purchase_is_denied(days):
    outcome = _purchase("delivered", days)
    assert (outcome.action, outcome.amount) == (Action.DENY, D("0"))
    assert outcome.citations == ["POL-001 §6"]


@pytest.mark.parametrize("status", ["not_delivered", "pending", "shipped"])
def test_undelivered_after_exactly_14_days_is_refunded(status):
    outcome = _purchase(status, 14)
    assert (outcome.action, outcome.amount) == (Action.FULL_REFUND, D("300.00"))


@pytest.mark.parametrize("status", ["not_delivered", "pending", "shipped"])
def test_undelivered_after_13_days_is_denied_for_now(status):
    outcome = _purchase(status, 13)
    assert (outcome.action, outcome.amount) == (Action.DENY, D("0"))
    assert "delivery window" in outcome.reason


def test_purchase_without_a_fulfilment_record_is_escalated():
    outcome = _purchase("not_applicable", 30)
    assert outcome.action == Action.ESCALATE


# -- POL-008 general complaints ------------------------------------------------------------------

ENTERPRISE_ANNUAL = f.subscription(plan=f.plan(plan_id="ent-annual", billing_period="annual", price=D("24000.00")))


def test_enterprise_general_complaint_gets_ten_percent_of_the_monthly_fee():
    # POL-008 §5: $24,000.00 a year -> monthly fee $2,000.00 -> up to $200.00.
    outcome = decide(
        dispute_type="general", acct=f.account(segment="enterprise"), sub=ENTERPRISE_ANNUAL,
        charges=[], charge_id=None, amount=D("500.00"),
    )  # fmt: skip
    assert (outcome.action, outcome.amount) == (Action.CREDIT, D("200.00"))
    assert outcome.citations == ["POL-008 §2"]


def test_enterprise_goodwill_credit_is_capped_at_the_disputed_amount():
    outcome = decide(
        dispute_type="general", acct=f.account(segment="enterprise"), sub=ENTERPRISE_ANNUAL,
        charges=[], charge_id=None, amount=D("75.00"),
    )  # fmt: skip
    assert (outcome.action, outcome.amount) == (Action.CREDIT, D("75.00"))


@pytest.mark.parametrize("segment", ["smb", "mid_market"])
def test_smb_and_mid_market_general_complaints_are_escalated(segment):
    outcome = decide(
        dispute_type="general", acct=f.account(segment=segment), sub=ENTERPRISE_ANNUAL,
        charges=[], charge_id=None, amount=D("500.00"),
    )  # fmt: skip
    assert (outcome.action, outcome.amount) == (Action.ESCALATE, D("0"))


def test_unknown_dispute_type_is_escalated_by_the_rules():
    facts = derive_facts(f.context()).model_copy(update={"dispute_type": "mystery"})
    assert apply_policy_rules(facts).action == Action.ESCALATE


# -- guardrails ----------------------------------------------------------------------------------


def proposal(action: Action | str, amount: str | Decimal, *, currency: str = "USD", **extra) -> ResolutionProposal:
    return ResolutionProposal(
        action=Action(action), amount=D(str(amount)), currency=currency, confidence=0.9, reasoning="test",
        model="test-model", provider="test", prompt_version="t1", **extra,
    )  # fmt: skip


BIG = f.charge(amount=D("1500.00"))


def big_context(**overrides):
    return f.context(charges=[BIG], amount=D("1500.00"), dispute_type="wrong_amount", **overrides)


def test_amount_is_capped_to_the_disputed_amount():
    context = f.context(amount=D("100.00"))
    guarded = apply_guardrails(proposal("full_refund", "120.00"), context)
    assert (guarded.action, guarded.amount) == (Action.FULL_REFUND, D("100.00"))
    assert "amount_capped_to_disputed:120.00->100.00" in guarded.flags


def test_credit_is_capped_to_the_disputed_amount_too():
    guarded = apply_guardrails(proposal("credit", "999.00"), f.context(amount=D("100.00")))
    assert (guarded.action, guarded.amount) == (Action.CREDIT, D("100.00"))


def test_refund_is_capped_to_what_is_still_refundable():
    # A refund executed since the context was built leaves less refundable than disputed.
    context = f.context(amount=D("100.00"))
    context = context.model_copy(update={"verdict": context.verdict.model_copy(update={"refundable_amount": D("40.00")})})
    guarded = apply_guardrails(proposal("partial_refund", "100.00"), context)
    assert (guarded.action, guarded.amount) == (Action.PARTIAL_REFUND, D("40.00"))
    assert "amount_capped_to_refundable:100.00->40.00" in guarded.flags


@pytest.mark.parametrize(("proposed", "kept"), [("40.00", "40.00"), ("40.01", "40.00"), ("39.99", "39.99")])
def test_refundable_cap_boundary(proposed, kept):
    context = f.context(amount=D("100.00"))
    context = context.model_copy(update={"verdict": context.verdict.model_copy(update={"refundable_amount": D("40.00")})})
    guarded = apply_guardrails(proposal("partial_refund", proposed), context)
    assert guarded.amount == D(kept)
    assert any(flag.startswith("amount_capped_to_refundable") for flag in guarded.flags) == (proposed != kept)


def test_refund_without_a_charge_is_escalated():
    context = f.context(dispute_type="general", charges=[], charge_id=None)
    guarded = apply_guardrails(proposal("full_refund", "50.00"), context)
    assert guarded.action == Action.ESCALATE
    assert "no_charge_to_refund" in guarded.flags


@pytest.mark.parametrize("action", ["partial_refund", "credit", "full_refund"])
def test_exactly_the_approval_threshold_stays(action):
    guarded = apply_guardrails(proposal(action, "1000.00"), big_context())
    assert (guarded.action, guarded.amount) == (Action(action), D("1000.00"))
    assert "above_approval_threshold" not in guarded.flags


@pytest.mark.parametrize("action", ["partial_refund", "credit", "full_refund"])
def test_one_cent_above_the_approval_threshold_is_escalated(action):
    guarded = apply_guardrails(proposal(action, "1000.01"), big_context())
    assert (guarded.action, guarded.amount) == (Action.ESCALATE, D("1000.01"))
    assert "above_approval_threshold" in guarded.flags


def test_threshold_is_configurable():
    guarded = apply_guardrails(proposal("credit", "50.00"), f.context(), GuardrailLimits(escalation_threshold=D("49.99")))
    assert guarded.action == Action.ESCALATE


@pytest.mark.parametrize("action", ["full_refund", "partial_refund", "credit"])
def test_unauthorized_claim_that_would_move_money_is_escalated(action):
    guarded = apply_guardrails(proposal(action, "50.00"), f.context(dispute_type="unauthorized"))
    assert guarded.action == Action.ESCALATE
    assert "unauthorized_requires_escalation" in guarded.flags


def test_negative_amount_is_zeroed_and_then_denied():
    guarded = apply_guardrails(proposal("credit", "-50.00"), f.context())
    assert (guarded.action, guarded.amount) == (Action.DENY, D("0"))
    assert "negative_amount_zeroed" in guarded.flags and "zero_amount_denied" in guarded.flags


def test_negative_amount_on_an_escalation_is_zeroed():
    guarded = apply_guardrails(proposal("escalate", "-5.00"), f.context())
    assert (guarded.action, guarded.amount) == (Action.ESCALATE, D("0"))


@pytest.mark.parametrize("action", ["full_refund", "partial_refund", "credit"])
def test_zero_amount_money_move_is_denied(action):
    guarded = apply_guardrails(proposal(action, "0"), f.context())
    assert (guarded.action, guarded.amount) == (Action.DENY, D("0"))
    assert "zero_amount_denied" in guarded.flags


def test_invalid_dispute_is_denied_whatever_was_proposed():
    context = f.context(acct=f.account(status="closed"))
    guarded = apply_guardrails(proposal("full_refund", "120.00"), context)
    assert (guarded.action, guarded.amount) == (Action.DENY, D("0"))
    assert "invalid_dispute" in guarded.flags


def test_deny_carries_no_amount():
    guarded = apply_guardrails(proposal("deny", "55.00"), f.context())
    assert (guarded.action, guarded.amount) == (Action.DENY, D("0"))


def test_currency_is_corrected_to_the_case_currency():
    guarded = apply_guardrails(proposal("credit", "10.00", currency="EUR"), f.context())
    assert guarded.currency == "USD"
    assert "currency_corrected:EUR->USD" in guarded.flags


def test_earlier_flags_are_kept():
    guarded = apply_guardrails(proposal("credit", "10.00", currency="EUR", flags=["injection_suspected"]), f.context())
    assert guarded.flags == ["injection_suspected", "currency_corrected:EUR->USD"]


def test_a_valid_proposal_within_every_limit_passes_unchanged():
    original = proposal("partial_refund", "30.00")
    guarded = apply_guardrails(original, f.context())
    assert guarded == original


_amounts = st.decimals(min_value=D("-10000000"), max_value=D("10000000"), places=2, allow_nan=False, allow_infinity=False)


@st.composite
def guarded_scenarios(draw):
    billed = draw(st.decimals(min_value=D("0.01"), max_value=D("50000"), places=2))
    refunded = draw(st.decimals(min_value=D("0"), max_value=billed, places=2))
    refundable = billed - refunded
    if refundable > 0:
        disputed = draw(st.decimals(min_value=D("0.01"), max_value=refundable, places=2))
    else:
        disputed = draw(st.decimals(min_value=D("0.01"), max_value=billed, places=2))
    dispute_type = draw(st.sampled_from(["duplicate_charge", "unauthorized", "wrong_amount", "general", "late_fee"]))
    status = draw(st.sampled_from(["active", "active", "active", "suspended"]))
    context = f.context(
        charges=[f.charge(amount=billed, amount_refunded=refunded)], amount=disputed, dispute_type=dispute_type,
        acct=f.account(status=status),
    )  # fmt: skip
    raw = ResolutionProposal(
        action=draw(st.sampled_from(list(Action))),
        amount=draw(_amounts),
        currency=draw(st.sampled_from(["USD", "EUR"])),
        confidence=draw(st.floats(min_value=0, max_value=1)),
        reasoning="x", model="m", provider="p", prompt_version="v",
    )  # fmt: skip
    return context, raw


@settings(max_examples=300, deadline=None)
@given(scenario=guarded_scenarios())
def test_no_proposal_gets_past_the_guardrails(scenario):
    context, raw = scenario
    limits = GuardrailLimits()
    guarded = apply_guardrails(raw, context, limits)
    disputed = context.crm.case.amount
    assert D("0") <= guarded.amount <= disputed
    assert guarded.amount == guarded.amount.quantize(D("0.01"))
    assert guarded.currency == context.crm.case.currency
    if guarded.action.is_refund:
        assert guarded.amount <= context.verdict.refundable_amount
    if guarded.action.moves_money:
        assert D("0") < guarded.amount <= limits.escalation_threshold
        assert context.verdict.valid
        assert context.crm.case.dispute_type != "unauthorized"
    if guarded.action == Action.DENY:
        assert guarded.amount == 0
    # The guardrails never invent money: a move is only ever kept or taken away.
    if guarded.action.moves_money:
        assert guarded.action == raw.action


# -- precedent -----------------------------------------------------------------------------------


def _outcome(action=Action.FULL_REFUND, confidence=0.8) -> RuleOutcome:
    return RuleOutcome(action=action, amount=D("120.00"), citations=["POL-002 §2"], reason="r", confidence=confidence)


def _past(n: int, action: str, score: float = 1.0):
    return f.similar_case(n, summary="past").model_copy(update={"action": action, "score": score})


def test_agreeing_precedent_raises_confidence_and_a_refund_of_either_kind_agrees():
    weighing = weigh_precedent(_outcome(), [_past(1, "full_refund"), _past(2, "partial_refund", 0.5)])
    assert weighing.confidence == pytest.approx(0.8 + 0.03 + 0.015)
    assert weighing.agreeing == ["HIST-0001", "HIST-0002"] and weighing.disagreeing == []


def test_disagreeing_precedent_lowers_confidence_more_than_agreement_raises_it():
    weighing = weigh_precedent(_outcome(), [_past(1, "deny"), _past(2, "full_refund")])
    assert weighing.confidence == pytest.approx(0.8 - 0.06 + 0.03)
    assert weighing.disagreeing == ["HIST-0001"] and weighing.agreeing == ["HIST-0002"]


def test_no_precedent_keeps_the_rule_confidence():
    assert weigh_precedent(_outcome(confidence=0.42), []).confidence == 0.42


def test_precedent_confidence_is_bounded():
    assert weigh_precedent(_outcome(confidence=0.1), [_past(i, "deny") for i in range(50)]).confidence == 0.05
    assert weigh_precedent(_outcome(confidence=0.95), [_past(i, "full_refund") for i in range(50)]).confidence == 0.99


@settings(max_examples=200, deadline=None)
@given(
    confidence=st.floats(min_value=0, max_value=1),
    past=st.lists(st.tuples(st.sampled_from([a.value for a in Action]), st.floats(min_value=0, max_value=1)), max_size=10),
    action=st.sampled_from(list(Action)),
)
def test_precedent_confidence_always_stays_within_bounds(confidence, past, action):
    outcome = _outcome(action, confidence)
    cases = [_past(i, a, s) for i, (a, s) in enumerate(past)]
    weighing = weigh_precedent(outcome, cases)
    assert 0.05 <= weighing.confidence <= 0.99
    assert len(weighing.agreeing) + len(weighing.disagreeing) == len(cases)
    assert outcome.action == action and outcome.confidence == confidence  # not mutated


def test_precedent_never_changes_the_engine_action():
    context = f.context(dispute_type="duplicate_charge")  # no duplicate on record: the rules deny
    facts = derive_facts(context)
    cases = [_past(i, "full_refund").model_copy(update={"dispute_type": "duplicate_charge"}) for i in range(3)]
    prompt = build_prompt(context, facts, [f.policy_hit()], cases)
    proposal_ = PrecedentProposer().propose(context, facts, prompt, [f.policy_hit()], cases)
    assert proposal_.action == apply_policy_rules(facts).action == Action.DENY
    assert proposal_.confidence < apply_policy_rules(facts).confidence
    assert proposal_.model == ENGINE_MODEL and proposal_.cost_usd == 0
    assert proposal_.reasoning.startswith("Rules engine (not a model)")
    assert proposal_.input_tokens == prompt.input_tokens
