"""Eligibility rules (POL-001 §2.1) over hand-built CRM, billing and payment records, the choice of
the disputed charge, and the few charges a proposal gets to see."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispute_platform.domain.context import MAX_RELEVANT_CHARGES, enrich
from dispute_platform.domain.models import DisputeType
from dispute_platform.domain.validation import (
    DISPUTE_WINDOW_DAYS,
    find_disputed_charge,
    select_relevant_charges,
    validate_dispute,
)
from dispute_platform_tests.domain import factories as f


def verdict_for(*, charges=None, ev=None, acct=None, **case_overrides):
    crm = f.crm(acct=acct, **case_overrides)
    pays = f.payments(*(charges if charges is not None else [f.charge()]))
    return validate_dispute(ev or f.event(), crm, f.billing(), pays)


def codes(verdict) -> list[str]:
    return [issue.code for issue in verdict.issues]


# -- the baseline --------------------------------------------------------------------------------


def test_default_dispute_is_valid_with_its_figures():
    verdict = verdict_for()
    assert verdict.valid, verdict.summary
    assert verdict.summary == "valid"
    assert verdict.disputed_charge_id == "ch_1"
    assert verdict.billed_amount == Decimal("120.00")
    assert verdict.refundable_amount == Decimal("120.00")
    assert verdict.days_since_charge == 10
    assert verdict.disputed_amount == Decimal("120.00")


# -- who, what, which currency -------------------------------------------------------------------


def test_unknown_dispute_type_is_invalid_and_names_the_allowed_types():
    verdict = verdict_for(dispute_type="chargeback_please")
    assert codes(verdict) == ["unknown_dispute_type"]
    message = verdict.issues[0].message
    assert "chargeback_please" in message
    for dispute_type in DisputeType:
        assert dispute_type.value in message


@pytest.mark.parametrize("dispute_type", [t.value for t in DisputeType])
def test_every_known_dispute_type_passes_the_type_check(dispute_type):
    assert "unknown_dispute_type" not in codes(verdict_for(dispute_type=dispute_type))


@pytest.mark.parametrize("status", ["suspended", "closed"])
def test_inactive_account_is_invalid(status):
    verdict = verdict_for(acct=f.account(status=status))
    assert codes(verdict) == ["account_inactive"]
    assert status in verdict.summary


def test_event_naming_another_customer_is_invalid():
    verdict = verdict_for(ev=f.event(customer_id="CUST-999"))
    assert codes(verdict) == ["customer_mismatch"]
    assert "CUST-999" in verdict.summary and f.CUSTOMER in verdict.summary


def test_event_without_customer_hint_is_not_a_mismatch():
    assert verdict_for(ev=f.event(customer_id=None)).valid


def test_event_currency_differing_from_the_case_is_invalid():
    verdict = verdict_for(ev=f.event(currency="EUR"))
    assert codes(verdict) == ["currency_mismatch"]
    assert "EUR" in verdict.summary


def test_charge_in_another_currency_than_the_case_is_invalid():
    verdict = verdict_for(charges=[f.charge(currency="EUR")])
    assert codes(verdict) == ["currency_mismatch"]


@pytest.mark.parametrize("amount", ["0", "0.00", "-5.00"])
def test_amount_not_above_zero_is_invalid(amount):
    verdict = verdict_for(amount=Decimal(amount))
    assert "amount_not_positive" in codes(verdict)
    assert not verdict.valid


def test_one_cent_is_a_positive_amount():
    assert verdict_for(amount=Decimal("0.01")).valid


# -- the charge ----------------------------------------------------------------------------------


def test_named_charge_missing_from_the_payment_history_is_invalid():
    verdict = verdict_for(charge_id="ch_missing")
    assert codes(verdict) == ["charge_not_found"]
    assert "ch_missing" in verdict.summary
    assert verdict.disputed_charge_id is None and verdict.days_since_charge is None


def test_unnamed_charge_that_nothing_matches_is_invalid():
    # Only a smaller charge exists: nothing on record could cover the disputed amount.
    verdict = verdict_for(charge_id=None, amount=Decimal("500.00"))
    assert codes(verdict) == ["charge_not_found"]
    assert verdict.summary == "no charge on the customer's payment history matches the dispute"


def test_general_complaint_needs_no_charge():
    verdict = verdict_for(dispute_type="general", charge_id=None, charges=[])
    assert verdict.valid, verdict.summary
    assert verdict.disputed_charge_id is None


@pytest.mark.parametrize("status", ["failed", "pending"])
def test_charge_that_did_not_settle_is_invalid(status):
    verdict = verdict_for(charges=[f.charge(status=status)])
    assert "charge_not_settled" in codes(verdict)
    assert status in verdict.summary
    assert verdict.refundable_amount == Decimal("0")


def test_charge_dated_after_the_case_is_invalid():
    verdict = verdict_for(charges=[f.charge(created_at=f.OPENED_AT + timedelta(days=1))])
    assert codes(verdict) == ["charge_after_case"]


# -- the 120-day window --------------------------------------------------------------------------


def _window_verdict(charged_at: datetime, opened_at: datetime, dispute_type: str = "duplicate_charge"):
    return verdict_for(charges=[f.charge(created_at=charged_at)], opened_at=opened_at, dispute_type=dispute_type)


@pytest.mark.parametrize(
    ("charged_at", "label"),
    [
        (datetime(2025, 3, 3, 9, 0, tzinfo=UTC), "inside one year"),
        (datetime(2024, 11, 15, 12, 0, tzinfo=UTC), "across a year boundary"),
        (datetime(2025, 1, 31, 8, 0, tzinfo=UTC), "from a month's last day"),
        (datetime(2023, 12, 1, 8, 0, tzinfo=UTC), "across a leap day"),
    ],
)
def test_window_is_exactly_120_days_inclusive(charged_at, label):
    at_120 = _window_verdict(charged_at, charged_at + timedelta(days=120))
    assert at_120.valid, f"{label}: {at_120.summary}"
    assert at_120.days_since_charge == DISPUTE_WINDOW_DAYS == 120

    at_121 = _window_verdict(charged_at, charged_at + timedelta(days=121))
    assert codes(at_121) == ["outside_window"], label
    assert at_121.days_since_charge == 121
    assert "121 days" in at_121.summary


def test_window_counts_calendar_days_late_in_the_day():
    # Charged a minute before midnight, opened a minute after: calendar days count, not 24 h spans.
    charged_at = datetime(2024, 12, 31, 23, 59, tzinfo=UTC)
    on_day_120 = datetime(2025, 4, 30, 23, 59, tzinfo=UTC)
    on_day_121 = datetime(2025, 5, 1, 0, 1, tzinfo=UTC)
    assert _window_verdict(charged_at, on_day_120).days_since_charge == 120
    assert _window_verdict(charged_at, on_day_120).valid
    late = _window_verdict(charged_at, on_day_121)
    assert late.days_since_charge == 121 and codes(late) == ["outside_window"]


def test_window_with_local_offsets_late_in_the_day_counts_in_one_timezone():
    # 23:30 in New York on 31 Dec is already 1 Jan in UTC; the case is opened on 1 May (UTC),
    # 120 UTC calendar days later. Mixing the charge's local date with the case's UTC date
    # would count 121 and wrongly refuse the dispute.
    new_york = timezone(timedelta(hours=-5))
    charged_at = datetime(2024, 12, 31, 23, 30, tzinfo=new_york)
    opened_at = datetime(2025, 5, 1, 10, 0, tzinfo=UTC)
    verdict = _window_verdict(charged_at, opened_at)
    assert verdict.days_since_charge == 120
    assert verdict.valid, verdict.summary


_OFFSETS = st.integers(min_value=-12 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=150, deadline=None)
@given(
    charged_at=st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)),
    elapsed=st.timedeltas(min_value=timedelta(days=100), max_value=timedelta(days=140)),
    charge_tz=_OFFSETS,
    case_tz=_OFFSETS,
)
def test_day_count_does_not_depend_on_the_offsets_the_systems_write(charged_at, elapsed, charge_tz, case_tz):
    """The same two instants give the same day count (UTC calendar days) whatever offset the
    payment system and the CRM happen to serialise them with."""
    opened_at = charged_at + elapsed
    verdict = _window_verdict(charged_at.astimezone(charge_tz), opened_at.astimezone(case_tz))
    expected = (opened_at.date() - charged_at.date()).days
    assert verdict.days_since_charge == expected
    assert ("outside_window" in codes(verdict)) == (expected > DISPUTE_WINDOW_DAYS)


@pytest.mark.parametrize("days", [121, 400, 2000])
def test_unauthorized_claims_have_no_window(days):
    verdict = _window_verdict(f.CHARGE_AT, f.CHARGE_AT + timedelta(days=days), dispute_type="unauthorized")
    assert verdict.valid, verdict.summary
    assert verdict.days_since_charge == days


@pytest.mark.parametrize("dispute_type", [t.value for t in DisputeType if t != DisputeType.UNAUTHORIZED])
def test_every_other_type_has_the_window(dispute_type):
    verdict = _window_verdict(f.CHARGE_AT, f.CHARGE_AT + timedelta(days=121), dispute_type=dispute_type)
    assert "outside_window" in codes(verdict)


# -- amounts against the charge ------------------------------------------------------------------


def test_amount_equal_to_billed_is_valid():
    assert verdict_for(amount=Decimal("120.00")).valid


def test_amount_one_cent_above_billed_is_invalid():
    verdict = verdict_for(amount=Decimal("120.01"))
    assert codes(verdict) == ["amount_exceeds_billed"]
    assert "120.01" in verdict.summary and "120.00" in verdict.summary


def test_amount_above_what_is_left_after_a_partial_refund_is_invalid():
    partly_refunded = f.charge(amount_refunded=Decimal("50.00"))
    over = verdict_for(charges=[partly_refunded], amount=Decimal("70.01"))
    assert codes(over) == ["amount_exceeds_refundable"]
    assert over.refundable_amount == Decimal("70.00")
    assert "70.00" in over.summary

    exact = verdict_for(charges=[partly_refunded], amount=Decimal("70.00"))
    assert exact.valid, exact.summary
    assert exact.billed_amount == Decimal("120.00") and exact.refundable_amount == Decimal("70.00")


def test_fully_refunded_charge_is_invalid():
    verdict = verdict_for(charges=[f.charge(amount_refunded=Decimal("120.00"))], amount=Decimal("10.00"))
    assert codes(verdict) == ["already_refunded"]
    assert verdict.refundable_amount == Decimal("0")


def test_several_problems_are_all_reported():
    verdict = verdict_for(
        acct=f.account(status="closed"),
        ev=f.event(customer_id="CUST-2", currency="GBP"),
        amount=Decimal("999.00"),
        dispute_type="nonsense",
    )
    assert set(codes(verdict)) == {
        "unknown_dispute_type",
        "customer_mismatch",
        "account_inactive",
        "currency_mismatch",
        "amount_exceeds_billed",
    }


# -- which charge is disputed --------------------------------------------------------------------


def _history() -> list:
    day = f.OPENED_AT - timedelta(days=30)
    return [
        f.charge("ch_small", amount=Decimal("100.00"), created_at=day),
        f.charge("ch_exact_old", amount=Decimal("120.00"), created_at=day + timedelta(days=2)),
        f.charge("ch_exact_new", amount=Decimal("120.00"), created_at=day + timedelta(days=5)),
        f.charge("ch_bigger_recent", amount=Decimal("150.00"), created_at=day + timedelta(days=20)),
        f.charge("ch_exact_failed", amount=Decimal("120.00"), created_at=day + timedelta(days=25), status="failed"),
        f.charge("ch_exact_after_case", amount=Decimal("120.00"), created_at=f.OPENED_AT + timedelta(hours=1)),
    ]


def test_find_charge_by_id_when_the_case_names_it():
    crm = f.crm(charge_id="ch_small", amount=Decimal("100.00"))
    assert find_disputed_charge(crm, f.payments(*_history())).charge_id == "ch_small"


def test_find_charge_without_id_prefers_the_most_recent_exact_amount_not_after_the_case():
    crm = f.crm(charge_id=None, amount=Decimal("120.00"))
    chosen = find_disputed_charge(crm, f.payments(*_history()))
    # Not the bigger, more recent one; not the failed one; not the one after the case opened.
    assert chosen.charge_id == "ch_exact_new"


def test_find_charge_without_exact_amount_takes_the_most_recent_that_covers_it():
    crm = f.crm(charge_id=None, amount=Decimal("110.00"))
    assert find_disputed_charge(crm, f.payments(*_history())).charge_id == "ch_bigger_recent"


def test_find_charge_without_candidates_is_none():
    crm = f.crm(charge_id=None, amount=Decimal("500.00"))
    assert find_disputed_charge(crm, f.payments(*_history())) is None
    assert find_disputed_charge(crm, f.payments()) is None


def test_general_complaint_without_a_charge_id_is_not_matched_to_a_guessed_charge():
    crm = f.crm(dispute_type="general", charge_id=None, amount=Decimal("120.00"))
    assert find_disputed_charge(crm, f.payments(*_history())) is None


def test_case_opened_at_the_very_moment_of_the_charge_may_dispute_it():
    crm = f.crm(charge_id=None, opened_at=f.CHARGE_AT)
    assert find_disputed_charge(crm, f.payments(f.charge())).charge_id == "ch_1"


# -- the charges a proposal sees -----------------------------------------------------------------


def test_relevant_charges_put_the_disputed_one_first_then_its_invoice_then_its_period():
    base = f.CHARGE_AT
    disputed = f.charge("ch_disputed", invoice_id="in_1", created_at=base)
    same_invoice_far = f.charge("ch_same_invoice", invoice_id="in_1", created_at=base + timedelta(days=40))
    same_period = f.charge("ch_same_period", invoice_id="in_2", amount=Decimal("99.00"), created_at=base + timedelta(days=20))
    same_amount = f.charge(
        "ch_same_amount", invoice_id="in_3", period_start=date(2025, 3, 1), created_at=base - timedelta(days=90)
    )
    nearest_other = f.charge(
        "ch_near", invoice_id="in_4", amount=Decimal("5.00"), period_start=None, created_at=base + timedelta(hours=1)
    )
    far_other = f.charge(
        "ch_far", invoice_id="in_5", amount=Decimal("6.00"), period_start=None, created_at=base - timedelta(days=300)
    )
    charges = [far_other, nearest_other, same_amount, same_period, same_invoice_far, disputed]
    chosen = [c.charge_id for c in select_relevant_charges(charges, disputed)]
    assert chosen == ["ch_disputed", "ch_same_invoice", "ch_same_period", "ch_same_amount", "ch_near"]


def test_relevant_charges_without_a_disputed_charge_are_the_most_recent():
    charges = [f.charge(f"ch_{i}", created_at=f.CHARGE_AT + timedelta(days=i)) for i in range(8)]
    chosen = [c.charge_id for c in select_relevant_charges(charges, None)]
    assert chosen == ["ch_7", "ch_6", "ch_5", "ch_4", "ch_3"]


_charge_lists = st.lists(
    st.builds(
        lambda i, invoice, amount, day, period: (i, invoice, amount, day, period),
        st.integers(),
        st.sampled_from([None, "in_a", "in_b", "in_c"]),
        st.sampled_from(["10.00", "120.00", "99.99"]),
        st.integers(min_value=-400, max_value=400),
        st.sampled_from([None, date(2025, 6, 1), date(2025, 7, 1)]),
    ),
    min_size=0,
    max_size=15,
)


@settings(max_examples=200, deadline=None)
@given(rows=_charge_lists, pick=st.integers(min_value=-1, max_value=14), limit=st.integers(min_value=1, max_value=8))
def test_relevant_charges_are_bounded_and_keep_the_disputed_one(rows, pick, limit):
    charges = [
        f.charge(
            f"ch_{n}",
            invoice_id=invoice,
            amount=Decimal(amount),
            created_at=f.CHARGE_AT + timedelta(days=day),
            period_start=period,
        )
        for n, (_, invoice, amount, day, period) in enumerate(rows)
    ]
    disputed = charges[pick] if charges and 0 <= pick < len(charges) else None
    chosen = select_relevant_charges(charges, disputed, limit=limit)
    assert len(chosen) <= limit
    assert len(chosen) == min(limit, len(charges))
    assert len({c.charge_id for c in chosen}) == len(chosen)
    assert all(c in charges for c in chosen)
    if disputed is not None:
        assert chosen[0].charge_id == disputed.charge_id
        # Every charge on the disputed invoice comes before any charge that is not on it.
        if disputed.invoice_id:
            on_invoice = [c.invoice_id == disputed.invoice_id for c in chosen]
            assert on_invoice == sorted(on_invoice, reverse=True)


# -- enrich --------------------------------------------------------------------------------------


def test_enrich_keeps_at_most_five_charges_with_the_disputed_one_first():
    charges = [f.charge(f"ch_{i}", created_at=f.CHARGE_AT - timedelta(days=10 * i)) for i in range(9)]
    context = f.context(charges=charges, charge_id="ch_4")
    assert context.case_id == "CASE-1"
    assert len(context.relevant_charges) == MAX_RELEVANT_CHARGES == 5
    assert context.relevant_charges[0].charge_id == "ch_4"
    assert context.disputed_charge.charge_id == "ch_4"
    assert context.verdict.valid, context.verdict.summary


def test_enrich_carries_an_invalid_verdict_without_a_disputed_charge():
    context = f.context(charge_id="ch_missing")
    assert not context.verdict.valid
    assert context.disputed_charge is None
    assert [c.charge_id for c in context.relevant_charges] == ["ch_1"]


def test_enrich_verdict_is_the_validation_verdict():
    crm, bill, pays, ev = f.crm(amount=Decimal("130.00")), f.billing(), f.payments(f.charge()), f.event()
    assert enrich(ev, crm, bill, pays).verdict == validate_dispute(ev, crm, bill, pays)
