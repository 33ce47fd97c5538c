"""StripePayments through the official `stripe` package, pointed at a local server that answers
with Stripe's API reference objects (fixtures/*.json)."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from dispute_platform.resources.connectors.http import ConnectorAuthError, ConnectorNotFound, ConnectorUnavailable
from dispute_platform.resources.connectors.stripe_payments import StripePayments, search_literal, to_minor_units
from dispute_platform.resources.providers import PaymentsProvider, ProviderError, RefundRefused
from dispute_platform_tests.connectors.conftest import FAST, FakeVendor, Reply, fixture

CHARGE = fixture("charge.json")
CHARGE_ID = CHARGE["id"]
CUSTOMER = fixture("customer.json")
KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"


def listing(url: str, *items: dict, has_more: bool = False) -> Reply:
    return Reply(200, {"object": "list", "data": list(items), "has_more": has_more, "url": url})


def payments(vendor: FakeVendor, **config) -> StripePayments:
    return StripePayments(secret_key=KEY, api_base=vendor.url, **{**FAST, **config})


def charge_with_refund() -> dict:
    charge = copy.deepcopy(CHARGE)
    refund = fixture("refund.json")
    refund["metadata"] = {"idempotency_key": "dispute-CASE-1-v1-d1", "reason": "dispute CASE-1"}
    charge["refunds"]["data"] = [refund]
    charge["refunds"]["total_count"] = 1
    return charge


def payment_routes(vendor: FakeVendor) -> None:
    vendor.on(
        "GET",
        "/v1/customers/search",
        Reply(
            200,
            {"object": "search_result", "data": [CUSTOMER], "has_more": False, "next_page": None, "url": "/v1/customers/search"},
        ),
    )
    vendor.on("GET", "/v1/payment_intents", listing("/v1/payment_intents", fixture("payment_intent.json")))
    failed = {
        **copy.deepcopy(CHARGE),
        "id": "ch_failed01",
        "status": "failed",
        "disputed": False,
        "amount_refunded": 0,
        "metadata": {},
    }
    vendor.on("GET", "/v1/charges", listing("/v1/charges", charge_with_refund(), failed))
    vendor.on("GET", "/v1/disputes", listing("/v1/disputes", fixture("dispute.json")))


def test_fetch_payments_maps_charges_refunds_and_disputes(vendor: FakeVendor) -> None:
    payment_routes(vendor)
    client = payments(vendor)
    assert isinstance(client, PaymentsProvider)
    record = client.fetch_payments("CUST-00001")

    charge = record.charges[0]
    assert charge.charge_id == CHARGE_ID and charge.customer_id == "CUST-00001"
    assert charge.amount == Decimal("49.00") and charge.currency == "USD"
    assert charge.amount_refunded == Decimal("10.00") and charge.refundable == Decimal("39.00")
    assert charge.created_at == datetime.fromtimestamp(1679090539, UTC)
    assert charge.kind == "renewal" and charge.invoice_id == "INV-000818"  # charge metadata wins over the intent's
    assert (charge.period_start, charge.period_end) == (date(2023, 3, 17), date(2023, 4, 16))
    assert charge.card_last4 == "4242" and charge.description == "Team plan (monthly)"
    assert record.charges[1].status == "failed" and record.charges[1].kind == "subscription"  # from the intent's metadata

    (refund,) = record.refunds
    assert refund.refund_id == "re_1Nispe2eZvKYlo2Cd31jOCgZ" and refund.amount == Decimal("10.00")
    assert refund.idempotency_key == "dispute-CASE-1-v1-d1" and refund.reason == "dispute CASE-1"
    (dispute,) = record.disputes
    assert dispute.dispute_id == "du_1MtJUT2eZvKYlo2CNaw2HvEv" and dispute.status == "open" and dispute.amount == Decimal("49.00")

    (search,) = vendor.seen("GET", "/v1/customers/search")
    assert search.query["query"] == ["metadata['customer_id']:'CUST-00001'"]
    assert search.header("Authorization") == f"Bearer {KEY}"
    (charges,) = vendor.seen("GET", "/v1/charges")
    assert charges.query["customer"] == ["cus_NffrFeUfNV2Hib"] and charges.query["expand[0]"] == ["data.refunds"]
    assert vendor.seen("GET", "/v1/disputes")[0].query["charge"] == [CHARGE_ID]  # only the disputed charge


def test_charges_are_paged_with_starting_after(vendor: FakeVendor) -> None:
    payment_routes(vendor)
    second = {**copy.deepcopy(CHARGE), "id": "ch_second02", "disputed": False}
    vendor.on(
        "GET",
        "/v1/charges",
        lambda seen: (
            listing("/v1/charges", second) if seen.query.get("starting_after") else listing("/v1/charges", CHARGE, has_more=True)
        ),
    )
    record = payments(vendor).fetch_payments("CUST-00001")
    assert [c.charge_id for c in record.charges] == [CHARGE_ID, "ch_second02"]
    assert vendor.seen("GET", "/v1/charges")[1].query["starting_after"] == [CHARGE_ID]


def test_injected_customer_id_never_reaches_the_search_query(vendor: FakeVendor) -> None:
    payment_routes(vendor)
    with pytest.raises(ConnectorNotFound, match="not a valid customer id"):
        payments(vendor).fetch_payments("CUST-1' OR metadata['x']:'y")
    with pytest.raises(ConnectorNotFound, match="not a Stripe customer id"):
        payments(vendor, customer_lookup="id").fetch_payments("CUST-00001")
    assert vendor.requests == []
    assert search_literal("a'b\\c") == "'a\\'b\\\\c'"


def test_customer_without_a_stripe_match_is_not_found(vendor: FakeVendor) -> None:
    vendor.on(
        "GET",
        "/v1/customers/search",
        Reply(200, {"object": "search_result", "data": [], "has_more": False, "next_page": None, "url": "/v1/customers/search"}),
    )
    with pytest.raises(ConnectorNotFound, match="no Stripe customer has metadata customer_id=CUST-9"):
        payments(vendor).fetch_payments("CUST-9")


def refund_routes(vendor: FakeVendor, *refund_replies: Reply) -> None:
    vendor.on("GET", f"/v1/charges/{CHARGE_ID}", Reply(200, CHARGE))
    vendor.on("POST", "/v1/refunds", *refund_replies)


def test_refund_posts_minor_units_metadata_and_the_idempotency_key(vendor: FakeVendor) -> None:
    refund = {**fixture("refund.json"), "amount": 2500}
    refund_routes(vendor, Reply(200, refund, {"Idempotency-Key": "dispute-CASE-1-v1-d1", "Request-Id": "req_1"}))
    receipt = payments(vendor).refund(
        CHARGE_ID, Decimal("25.00"), "USD", "dispute-CASE-1-v1-d1", "dispute CASE-1", case_id="CASE-1"
    )
    assert receipt.kind == "refund" and receipt.reference == "re_1Nispe2eZvKYlo2Cd31jOCgZ"
    assert receipt.amount == Decimal("25.00") and receipt.currency == "USD" and receipt.replayed is False

    (post,) = vendor.seen("POST", "/v1/refunds")
    assert post.header("Idempotency-Key") == "dispute-CASE-1-v1-d1"
    assert post.header("Authorization") == f"Bearer {KEY}"
    form = post.form()
    assert form["charge"] == [CHARGE_ID] and form["amount"] == ["2500"] and form["reason"] == ["requested_by_customer"]
    assert form["metadata[case_id]"] == ["CASE-1"] and form["metadata[idempotency_key]"] == ["dispute-CASE-1-v1-d1"]


def test_a_replayed_refund_is_reported_as_replayed(vendor: FakeVendor) -> None:
    refund = {**fixture("refund.json"), "amount": 2500}
    refund_routes(vendor, Reply(200, refund, {"Idempotent-Replayed": "true"}))
    assert payments(vendor).refund(CHARGE_ID, Decimal("25.00"), "USD", "k-1", "dispute CASE-1").replayed is True


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (402, "error_card.json", "card_declined: Your card was declined."),
        (
            400,
            "error_invalid_request.json",
            "charge_already_refunded: Charge ch_3MmlLrLkdIwHu7ix0snN0B15 has already been refunded.",
        ),
    ],
)
def test_stripe_refusals_are_refund_refused_with_stripes_message(
    vendor: FakeVendor, status: int, body: str, message: str
) -> None:
    refund_routes(vendor, Reply(status, fixture(body)))
    with pytest.raises(RefundRefused) as caught:
        payments(vendor).refund(CHARGE_ID, Decimal("25.00"), "USD", "k-1", "r")
    assert message in str(caught.value)
    assert len(vendor.seen("POST", "/v1/refunds")) == 1  # a refusal is not retried


def test_rate_limit_is_retried_with_the_same_key(vendor: FakeVendor) -> None:
    refund = {**fixture("refund.json"), "amount": 2500}
    refund_routes(vendor, Reply(429, fixture("error_rate_limit.json"), {"Retry-After": "0"}), Reply(200, refund))
    assert payments(vendor).refund(CHARGE_ID, Decimal("25.00"), "USD", "k-1", "r").reference == refund["id"]
    assert [p.header("Idempotency-Key") for p in vendor.seen("POST", "/v1/refunds")] == ["k-1", "k-1"]


def test_500_then_success(vendor: FakeVendor) -> None:
    refund = {**fixture("refund.json"), "amount": 2500}
    refund_routes(vendor, Reply(500, fixture("error_api.json")), Reply(200, refund))
    assert payments(vendor).refund(CHARGE_ID, Decimal("25.00"), "USD", "k-1", "r").amount == Decimal("25.00")


def test_500_until_giving_up_is_a_provider_error_not_a_receipt(vendor: FakeVendor) -> None:
    refund_routes(vendor, Reply(500, fixture("error_api.json")))
    with pytest.raises(ConnectorUnavailable) as caught:
        payments(vendor, max_attempts=3).refund(CHARGE_ID, Decimal("25.00"), "USD", "k-1", "r")
    assert isinstance(caught.value, ProviderError)
    assert "Stripe refund failed with HTTP 500" in str(caught.value) and "3 attempts" in str(caught.value)
    assert len(vendor.seen("POST", "/v1/refunds")) == 3


def test_401_is_an_auth_error_naming_the_key(vendor: FakeVendor) -> None:
    vendor.on("GET", "/v1/customers/search", Reply(401, fixture("error_authentication.json")))
    with pytest.raises(ConnectorAuthError, match="Stripe fetch_payments customers failed with HTTP 401.*STRIPE_SECRET_KEY"):
        payments(vendor).fetch_payments("CUST-00001")
    assert len(vendor.requests) == 1


def test_timeout_is_retried_then_reported(vendor: FakeVendor) -> None:
    vendor.on("GET", f"/v1/charges/{CHARGE_ID}", Reply(200, CHARGE, delay=0.5))
    with pytest.raises(ConnectorUnavailable, match="connection failed"):
        payments(vendor, timeout_seconds=0.1, max_attempts=2).refund(CHARGE_ID, Decimal("25.00"), "USD", "k-1", "r")
    assert len(vendor.seen("GET")) == 2 and vendor.seen("POST") == []


def test_failed_refund_is_never_reported_as_done(vendor: FakeVendor) -> None:
    failed = {**fixture("refund.json"), "amount": 2500, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    refund_routes(vendor, Reply(200, failed))
    with pytest.raises(RefundRefused, match="is failed \\(expired_or_canceled_card\\)"):
        payments(vendor).refund(CHARGE_ID, Decimal("25.00"), "USD", "k-1", "r")


def test_currency_mismatch_and_unknown_charge_are_refused_before_posting(vendor: FakeVendor) -> None:
    refund_routes(vendor, Reply(200, fixture("refund.json")))
    with pytest.raises(RefundRefused, match="refund in EUR on a USD charge"):
        payments(vendor).refund(CHARGE_ID, Decimal("25.00"), "EUR", "k-1", "r")
    vendor.on(
        "GET",
        "/v1/charges/ch_missing",
        Reply(
            404,
            {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such charge: 'ch_missing'"}},
        ),
    )
    with pytest.raises(RefundRefused, match="No such charge"):
        payments(vendor).refund("ch_missing", Decimal("25.00"), "USD", "k-1", "r")
    with pytest.raises(RefundRefused, match="not a Stripe charge id"):
        payments(vendor).refund("ch_1' OR 1", Decimal("25.00"), "USD", "k-1", "r")
    assert vendor.seen("POST") == []


def test_minor_units() -> None:
    assert to_minor_units(Decimal("25.00"), "USD") == 2500
    assert to_minor_units(Decimal("500"), "JPY") == 500
    with pytest.raises(RefundRefused):
        to_minor_units(Decimal("10.5"), "JPY")


def test_find_refunds_returns_the_refunds_carrying_our_case_id_whatever_their_key(vendor: FakeVendor) -> None:
    """Reconciliation: Stripe forgets idempotency keys after 24 h, the refund's metadata stays."""
    base = fixture("refund.json")
    ours = {**base, "id": "re_ours", "amount": 2500, "metadata": {"case_id": "CASE-1", "idempotency_key": "dispute-CASE-1"}}
    other_case = {**base, "id": "re_other", "metadata": {"case_id": "CASE-2"}}
    failed = {**base, "id": "re_failed", "status": "failed", "metadata": {"case_id": "CASE-1"}}
    page1 = {"object": "list", "data": [other_case, failed], "has_more": True, "url": "/v1/refunds"}
    page2 = {"object": "list", "data": [ours], "has_more": False, "url": "/v1/refunds"}
    vendor.on("GET", "/v1/refunds", Reply(200, page1), Reply(200, page2))
    [found] = payments(vendor).find_refunds(CHARGE_ID, "CASE-1")
    assert found.reference == "re_ours" and found.amount == Decimal("25.00") and found.replayed
    first, second = vendor.seen("GET", "/v1/refunds")
    assert first.query["charge"] == [CHARGE_ID] and second.query["starting_after"] == ["re_failed"]
    assert payments(vendor).find_refunds(CHARGE_ID, "CASE-3") == []
