"""What a model call costs, and the per-dispute caps the blocking checks enforce."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispute_platform.domain.caps import CAP_NAMES, CapLimits, evaluate_caps
from dispute_platform.domain.costs import DEFAULT_PRICES, ModelPrice, call_cost, price_for
from dispute_platform.domain.models import Action, ResolutionProposal

D = Decimal
MINI = DEFAULT_PRICES["gpt-4o-mini"]


# -- prices --------------------------------------------------------------------------------------


def test_gpt_4o_mini_prices_are_the_published_ones():
    assert (MINI.input_per_1m, MINI.output_per_1m, MINI.cached_input_per_1m) == (D("0.150"), D("0.600"), D("0.075"))


@pytest.mark.parametrize(
    ("input_tokens", "output_tokens", "cached", "cost"),
    [
        (1000, 250, 0, "0.0003"),  # the design's typical dispute
        (1200, 300, 0, "0.00036"),
        (2075, 1000, 0, "0.00091125"),  # both token caps at once stay under the $0.001 cost cap
        (1_000_000, 0, 0, "0.15"),
        (0, 1_000_000, 0, "0.6"),
        (0, 0, 0, "0"),
        (1, 0, 0, "0.00000015"),
        (2000, 0, 1024, "0.0002232"),  # 976 * 0.15 + 1024 * 0.075 per 1M
        (2000, 0, 2000, "0.00015"),
        (100, 0, 5000, "0.0000075"),  # cached tokens never exceed the input tokens
    ],
)
def test_call_cost_for_gpt_4o_mini(input_tokens, output_tokens, cached, cost):
    assert call_cost(MINI, input_tokens, output_tokens, cached) == D(cost)


def test_call_cost_without_a_cached_rate_bills_cached_tokens_as_input():
    price = ModelPrice(input_per_1m=D("1"), output_per_1m=D("2"))
    assert call_cost(price, 1000, 0, 1000) == call_cost(price, 1000, 0, 0) == D("0.001")


@settings(max_examples=200, deadline=None)
@given(
    input_tokens=st.integers(min_value=0, max_value=200_000),
    output_tokens=st.integers(min_value=0, max_value=20_000),
    cached=st.integers(min_value=0, max_value=200_000),
)
def test_call_cost_is_exact_to_the_cent_fraction_and_caching_only_saves(input_tokens, output_tokens, cached):
    cost = call_cost(MINI, input_tokens, output_tokens, cached)
    uncached = call_cost(MINI, input_tokens, output_tokens)
    assert isinstance(cost, Decimal)
    assert D(0) <= cost <= uncached
    assert uncached == (D(input_tokens) * D("0.15") + D(output_tokens) * D("0.6")) / D(1_000_000)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
    ],
)
def test_dated_model_names_bill_like_their_family(model, family):
    assert price_for(model) == DEFAULT_PRICES[family]


def test_dated_mini_is_not_billed_as_the_bigger_model():
    assert price_for("gpt-4o-mini-2024-07-18").input_per_1m == D("0.150")


def test_unknown_model_raises_a_helpful_key_error():
    with pytest.raises(KeyError) as raised:
        price_for("claude-3-opus")
    message = str(raised.value)
    assert "claude-3-opus" in message
    assert "LLM_PRICES" in message and "price table" in message


def test_a_custom_price_table_replaces_the_defaults():
    table = {"local-llm": ModelPrice(input_per_1m=D("0"), output_per_1m=D("0"))}
    assert price_for("local-llm", table).input_per_1m == 0
    with pytest.raises(KeyError):
        price_for("gpt-4o-mini", table)


def test_price_table_from_json_as_the_settings_give_it():
    table = {k: ModelPrice(**v) for k, v in json.loads('{"m": {"input_per_1m": "0.5", "output_per_1m": "1.5"}}').items()}
    assert call_cost(price_for("m-2025-01-01", table), 1000, 1000) == D("0.002")


# -- caps ----------------------------------------------------------------------------------------


def proposal(
    action: str = "credit", amount: str = "10.00", *, input_tokens: int = 1000, output_tokens: int = 250, cost: str = "0.0003"
) -> ResolutionProposal:
    return ResolutionProposal(
        action=Action(action), amount=D(amount), confidence=0.8, reasoning="r", model="gpt-4o-mini",
        provider="openai", prompt_version="v", input_tokens=input_tokens, output_tokens=output_tokens,
        cost_usd=D(cost),
    )  # fmt: skip


def caps(p: ResolutionProposal, refundable: str | None = "100.00", disputed: str = "100.00", spent: str = "0", **limits):
    results = evaluate_caps(p, D(refundable) if refundable is not None else None, D(disputed), CapLimits(**limits), D(spent))
    assert [r.name for r in results] == list(CAP_NAMES)
    return {r.name: r for r in results}


def test_default_limits_are_the_design_caps():
    limits = CapLimits()
    assert (limits.max_input_tokens, limits.max_output_tokens, limits.max_cost_usd) == (2075, 1000, D("0.001"))


def test_a_typical_proposal_passes_every_cap():
    assert all(r.passed for r in caps(proposal()).values())


@pytest.mark.parametrize(("tokens", "passed"), [(2074, True), (2075, True), (2076, False)])
def test_input_token_cap_boundary(tokens, passed):
    result = caps(proposal(input_tokens=tokens))["input_tokens_within_cap"]
    assert result.passed is passed
    assert (result.figure, result.cap) == (D(tokens), D(2075))


@pytest.mark.parametrize(("tokens", "passed"), [(1000, True), (1001, False)])
def test_output_token_cap_boundary(tokens, passed):
    assert caps(proposal(output_tokens=tokens))["output_tokens_within_cap"].passed is passed


@pytest.mark.parametrize(("cost", "passed"), [("0.001", True), ("0.00099999", True), ("0.00100001", False)])
def test_cost_cap_boundary(cost, passed):
    result = caps(proposal(cost=cost))["cost_within_cap"]
    assert result.passed is passed
    assert result.figure == D(cost)


def test_cost_cap_counts_what_the_dispute_already_spent():
    at_cap = caps(proposal(cost="0.0004"), spent="0.0006")["cost_within_cap"]
    assert at_cap.passed and at_cap.figure == D("0.0010")
    over = caps(proposal(cost="0.0004"), spent="0.00060001")["cost_within_cap"]
    assert not over.passed and over.figure == D("0.00100001")


def test_custom_limits_apply():
    result = caps(proposal(input_tokens=500), max_input_tokens=499)["input_tokens_within_cap"]
    assert not result.passed and result.cap == D(499)


@pytest.mark.parametrize(("amount", "passed"), [("100.00", True), ("100.01", False)])
def test_credit_is_capped_by_the_disputed_amount_not_the_refundable(amount, passed):
    # Nothing is refundable any more, but a credit touches no charge.
    result = caps(proposal("credit", amount), refundable="0", disputed="100.00")["amount_within_refundable"]
    assert result.passed is passed
    assert result.cap == D("100.00")


@pytest.mark.parametrize(
    ("refundable", "disputed", "cap"),
    [("40.00", "100.00", "40.00"), ("100.00", "40.00", "40.00"), ("50.00", "50.00", "50.00")],
)
@pytest.mark.parametrize("action", ["full_refund", "partial_refund"])
def test_refund_is_capped_by_the_smaller_of_disputed_and_refundable(action, refundable, disputed, cap):
    at_cap = caps(proposal(action, cap), refundable=refundable, disputed=disputed)["amount_within_refundable"]
    assert at_cap.passed and at_cap.cap == D(cap)
    over = caps(proposal(action, str(D(cap) + D("0.01"))), refundable=refundable, disputed=disputed)
    assert not over["amount_within_refundable"].passed


def test_refund_without_a_known_refundable_amount_fails():
    result = caps(proposal("full_refund", "1.00"), refundable=None)["amount_within_refundable"]
    assert not result.passed and result.cap == D("0")


@pytest.mark.parametrize("action", ["deny", "escalate"])
def test_actions_that_move_no_money_pass_the_amount_cap(action):
    assert caps(proposal(action, "5000.00"), refundable="0", disputed="10.00")["amount_within_refundable"].passed
