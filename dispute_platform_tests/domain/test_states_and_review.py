"""The state machine and the decision rules, without a server: no allowed move goes backwards;
four-eyes counts reviewer records and compares USD values; reviewer names are one per person."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispute_platform.domain.models import Action, ModifiedResolution
from dispute_platform.domain.money import DEFAULT_USD_RATES, above_threshold, parse_rates, usd_value
from dispute_platform.domain.review import (
    DecisionRefused,
    PendingDispute,
    PriorDecision,
    check_reviewer_name,
    evaluate_decision,
)
from dispute_platform.domain.states import (
    ALLOWED_FROM,
    AWAITING_DECISION,
    PROPOSAL_MAY_REGENERATE,
    RANK,
    Status,
    may_move,
)

MONEY_MAY_HAVE_MOVED = {Status.EXECUTING, Status.EXECUTION_FAILED, Status.EXECUTED, Status.COMPLETED}


def test_every_status_has_a_rank_and_a_rule():
    assert set(RANK) == set(Status) == set(ALLOWED_FROM)


@given(st.sampled_from(list(Status)), st.sampled_from(list(Status)))
def test_no_allowed_move_lowers_the_rank(current, to):
    if may_move(current, to):
        assert RANK[to] >= RANK[current], (current, to)


@given(st.sampled_from(sorted(MONEY_MAY_HAVE_MOVED)), st.sampled_from(list(Status)))
def test_once_money_may_have_moved_nothing_reopens_the_dispute(current, to):
    if to in AWAITING_DECISION | PROPOSAL_MAY_REGENERATE | {Status.DECIDED}:
        assert not may_move(current, to), (current, to)


def test_a_decision_is_never_replaced_by_a_proposal():
    for decided in (Status.AWAITING_SECOND_REVIEW, Status.DECIDED, Status.REJECTED):
        assert not may_move(decided, Status.PENDING_REVIEW) and not may_move(decided, Status.BLOCKED)
    assert not may_move(Status.PENDING_REVIEW, Status.EXECUTING)  # no execution without a decision


# --- money --------------------------------------------------------------------------------------


def test_rates_parse_strictly():
    assert parse_rates(None) == DEFAULT_USD_RATES
    assert parse_rates('{"USD": 1, "EUR": "1.1"}') == {"USD": Decimal("1"), "EUR": Decimal("1.1")}
    for bad in ("[1]", '{"usd": 1}', '{"EUR": 0}', '{"EUR": "x"}', '{"EUR": "NaN"}', "{"):
        with pytest.raises(ValueError):
            parse_rates(bad)


@given(st.decimals(min_value=0, max_value=10**7, places=2), st.sampled_from(["USD", "GBP", "KWD", "JPY", "XTS", ""]))
def test_an_unpriced_currency_is_above_every_threshold(amount, currency):
    value = usd_value(amount, currency, DEFAULT_USD_RATES)
    assert above_threshold(amount, currency, Decimal("1000"), DEFAULT_USD_RATES) == (value is None or value > 1000)
    if currency not in DEFAULT_USD_RATES:
        assert above_threshold(amount, currency, Decimal("10") ** 12, DEFAULT_USD_RATES)


# --- decisions ----------------------------------------------------------------------------------


def _dispute(currency: str = "USD", status: Status = Status.PENDING_REVIEW) -> PendingDispute:
    return PendingDispute(
        case_id="CASE-1", status=status, proposal_version=1, proposed_action=Action.ESCALATE, proposed_amount=Decimal("0"),
        disputed_amount=Decimal("500000"), refundable_amount=Decimal("500000"), currency=currency,
    )  # fmt: skip


def _decide(reviewer_id: int, amount: str, currency: str = "USD", prior: list[PriorDecision] | None = None,
            decision: str = "modified"):  # fmt: skip
    status = Status.AWAITING_SECOND_REVIEW if prior else Status.PENDING_REVIEW
    return evaluate_decision(
        decision=decision, reviewer_id=reviewer_id, reviewer=f"r{reviewer_id}", proposal_version=1,
        modified=ModifiedResolution(action="credit", amount=Decimal(amount), reason="x") if decision == "modified" else None,
        dispute=_dispute(currency, status), prior=prior or [], four_eyes_threshold_usd=Decimal("1000"),
        usd_rates=DEFAULT_USD_RATES,
    )  # fmt: skip


@pytest.mark.parametrize(
    "amount, currency, final",
    [("999", "USD", True), ("1000", "USD", True), ("1000.01", "USD", False), ("999", "GBP", False),
     ("999", "KWD", False), ("999", "XTS", False), ("140000", "JPY", True), ("160000", "JPY", False)],
)  # fmt: skip
def test_four_eyes_compares_the_usd_value(amount, currency, final):
    assert _decide(1, amount, currency).final is final


def test_the_second_pair_of_eyes_must_be_another_record():
    first = _decide(1, "1500")
    prior = [PriorDecision(1, "mallory", "modified", first.effective_action, first.effective_amount)]
    with pytest.raises(DecisionRefused) as same:
        _decide(1, "1500", prior=prior, decision="approved")
    assert same.value.status_code == 409
    second = _decide(2, "1500", prior=prior, decision="approved")
    assert second.final and second.new_status == Status.DECIDED and second.effective_amount == Decimal("1500")


def test_a_second_review_without_a_first_is_refused():
    with pytest.raises(DecisionRefused):
        evaluate_decision(decision="approved", reviewer_id=2, reviewer="b", proposal_version=1, modified=None,
                          dispute=_dispute(status=Status.AWAITING_SECOND_REVIEW), prior=[],
                          four_eyes_threshold_usd=Decimal("1000"), usd_rates=DEFAULT_USD_RATES)  # fmt: skip


@pytest.mark.parametrize("name", ["alice", "Alice Smith", "ops.bob@example.com", "r2-d2", "A" * 64])
def test_reviewer_names_that_hold(name):
    assert check_reviewer_name(f"  {name} ") == name


@pytest.mark.parametrize("name", ["", " ", "-x", "a" * 65, "mаllory", "alice\nbob", "a  b", "auto-policy", "Auto-Policy"])
def test_reviewer_names_that_do_not(name):
    with pytest.raises(ValueError):
        check_reviewer_name(name)
