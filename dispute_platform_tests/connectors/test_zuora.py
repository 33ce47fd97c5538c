"""ZuoraBilling against a local server answering in the v1 REST API's documented shapes."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from dispute_platform.resources.connectors.http import (
    ConnectorAuthError,
    ConnectorConfigError,
    ConnectorNotFound,
    ConnectorUnavailable,
)
from dispute_platform.resources.connectors.zuora import ZuoraBilling
from dispute_platform.resources.providers import BillingProvider, RefundRefused
from dispute_platform_tests.connectors.conftest import FAST, FakeVendor, Reply

ACCOUNT = "CUST-00001"
ACCOUNT_ID = "8ad09be48db5aba7018db604776d4854"
CHARGE_ID = "8ad097b4909708e001909b41bb085d38"


def account_reply(currency: str = "USD") -> Reply:
    return Reply(
        200,
        {
            "basicInfo": {
                "id": ACCOUNT_ID,
                "name": "Evergreen Financial Group Ltd",
                "accountNumber": ACCOUNT,
                "status": "Active",
            },
            "billingAndPayment": {"billCycleDay": 26, "currency": currency, "paymentTerm": "Due Upon Receipt"},
            "metrics": {"balance": 0.0, "totalInvoiceBalance": 0.0},
            "success": True,
        },
    )


SUBSCRIPTION = {
    "id": "8ad0823f8455bb4d018457a1a9f11c09",
    "accountId": ACCOUNT_ID,
    "accountNumber": ACCOUNT,
    "subscriptionNumber": "A-S00000001",
    "status": "Active",
    "contractEffectiveDate": "2025-10-26",
    "subscriptionStartDate": "2025-10-26",
    "termStartDate": "2025-10-26",
    "termEndDate": "2026-10-26",
    "ratePlans": [
        {
            "id": "8ad0823f8455bb4d018457a1aa2e1c11",
            "productId": "8ad08c0f7e3cbd4f017e4b4a0cad2c52",
            "productName": "Brightwave",
            "productRatePlanId": "team-monthly",
            "ratePlanName": "Team (monthly)",
            "ratePlanCharges": [
                {
                    "id": "8ad0823f8455bb4d018457a1aa4a1c13",
                    "name": "Team seat fee",
                    "type": "Recurring",
                    "model": "FlatFee",
                    "price": 49.0,
                    "quantity": 1,
                    "currency": "USD",
                    "billingPeriod": "Month",
                    "mrr": 49.0,
                    "effectiveStartDate": "2025-10-26",
                    "processedThroughDate": "2026-10-26",
                    "chargedThroughDate": "2026-11-26",
                },
                {"id": "x", "name": "Onboarding", "type": "OneTime", "model": "FlatFee", "price": 500.0, "billingPeriod": None},
            ],
        }
    ],
}


def invoice(number: str, amount: float, balance: float, status: str = "Posted", items: list | None = None) -> dict:
    return {
        "id": f"id-{number}",
        "accountId": ACCOUNT_ID,
        "accountNumber": ACCOUNT,
        "invoiceNumber": number,
        "invoiceDate": "2026-10-26",
        "dueDate": "2026-10-26",
        "amount": amount,
        "balance": balance,
        "status": status,
        "invoiceItems": items
        if items is not None
        else [
            {
                "id": f"item-{number}",
                "subscriptionName": "A-S00000001",
                "subscriptionId": SUBSCRIPTION["id"],
                "serviceStartDate": "2026-10-26",
                "serviceEndDate": "2026-11-25",
                "chargeAmount": amount,
                "chargeDescription": "",
                "chargeName": "Team seat fee",
                "processingType": "Charge",
                "quantity": 1,
                "taxAmount": 0,
            }
        ],
    }


def billing(vendor: FakeVendor, **config) -> ZuoraBilling:
    base = {"base_url": vendor.url, "client_id": "zid", "client_secret": "zsecret", "credit_charge_id": CHARGE_ID}
    return ZuoraBilling(**{**base, **FAST, **config})


def token(value: str = "zt-1", expires_in: int = 3599) -> Reply:
    return Reply(200, {"access_token": value, "token_type": "bearer", "expires_in": expires_in, "scope": "entity.1", "jti": "j"})


def routes(vendor: FakeVendor) -> None:
    vendor.on("POST", "/oauth/token", token())
    vendor.on("GET", f"/v1/accounts/{ACCOUNT}", account_reply())
    vendor.on("GET", f"/v1/subscriptions/accounts/{ACCOUNT}", Reply(200, {"subscriptions": [SUBSCRIPTION], "success": True}))
    late_fee = [
        {"id": "lf", "subscriptionName": None, "chargeAmount": 25.0, "chargeName": "Late Fee", "processingType": "Charge"}
    ]
    vendor.on(
        "GET",
        f"/v1/transactions/invoices/accounts/{ACCOUNT}",
        lambda seen: Reply(
            200,
            {
                "invoices": [invoice("INV00000041", 49.0, 0.0), invoice("INV00000042", 25.0, 25.0, items=late_fee)],
                "nextPage": f"{vendor.url}/v1/transactions/invoices/accounts/{ACCOUNT}?page=2&pageSize=40",
                "success": True,
            }
            if seen.query.get("page") == ["1"]
            else {
                "invoices": [
                    invoice("INV00000040", 49.0, 0.0, status="Canceled"),
                    invoice("INV00000043", 49.0, 49.0, status="Draft"),
                ],
                "success": True,
            },
        ),
    )


def test_fetch_billing_maps_subscription_and_invoices(vendor: FakeVendor) -> None:
    routes(vendor)
    client = billing(vendor)
    assert isinstance(client, BillingProvider)
    record = client.fetch_billing(ACCOUNT)

    sub = record.subscription
    assert sub is not None and sub.subscription_id == "A-S00000001" and sub.status == "active"
    assert sub.plan.plan_id == "team-monthly" and sub.plan.billing_period == "monthly"
    assert sub.plan.price == Decimal("49.00") and sub.plan.currency == "USD"
    assert (sub.current_period_start, sub.current_period_end) == (date(2026, 10, 26), date(2026, 11, 25))
    assert [(i.invoice_id, i.status) for i in record.invoices] == [
        ("INV00000041", "paid"),
        ("INV00000042", "open"),
        ("INV00000040", "void"),
    ]
    assert record.invoices[0].period_start == date(2026, 10, 26) and record.invoices[0].subscription_id == "A-S00000001"
    assert record.invoices[1].lines[0].kind == "late_fee"

    # One token for all four reads; every read carries it.
    assert len(vendor.seen("POST", "/oauth/token")) == 1
    assert vendor.seen("POST", "/oauth/token")[0].form()["grant_type"] == ["client_credentials"]
    assert {r.header("Authorization") for r in vendor.seen("GET")} == {"Bearer zt-1"}
    assert vendor.seen("GET", f"/v1/transactions/invoices/accounts/{ACCOUNT}")[1].query == {"page": ["2"], "pageSize": ["40"]}


def test_invalid_account_key_is_rejected_before_any_request(vendor: FakeVendor) -> None:
    routes(vendor)
    for bad in ("CUST-1' OR 1=1", "../accounts", "A/B", "CUST 1"):
        with pytest.raises(ConnectorNotFound, match="not a valid Zuora account key"):
            billing(vendor).fetch_billing(bad)
    assert vendor.requests == []


def test_unknown_account_reported_in_a_200_is_not_found(vendor: FakeVendor) -> None:
    vendor.on("POST", "/oauth/token", token())
    vendor.on(
        "GET",
        f"/v1/accounts/{ACCOUNT}",
        Reply(
            200,
            {
                "success": False,
                "processId": "7F2E",
                "reasons": [{"code": 50000040, "message": "Cannot find entity by key: 'CUST-00001'."}],
            },
        ),
    )
    with pytest.raises(ConnectorNotFound, match="Zuora has no account CUST-00001"):
        billing(vendor).fetch_billing(ACCOUNT)


def test_expired_token_is_refreshed_once_on_401(vendor: FakeVendor) -> None:
    routes(vendor)
    vendor.on("POST", "/oauth/token", token("zt-1"), token("zt-2"))
    vendor.on(
        "GET",
        f"/v1/accounts/{ACCOUNT}",
        lambda seen: (
            account_reply() if seen.header("Authorization") == "Bearer zt-2" else Reply(401, {"message": "Authentication error"})
        ),
    )
    billing(vendor).fetch_billing(ACCOUNT)
    assert len(vendor.seen("POST", "/oauth/token")) == 2
    assert [r.header("Authorization") for r in vendor.seen("GET", f"/v1/accounts/{ACCOUNT}")] == ["Bearer zt-1", "Bearer zt-2"]


def test_401_after_a_refresh_fails_clearly(vendor: FakeVendor) -> None:
    vendor.on("POST", "/oauth/token", token())
    vendor.on("GET", f"/v1/accounts/{ACCOUNT}", Reply(401, {"message": "Authentication error"}))
    with pytest.raises(ConnectorAuthError, match="Zuora fetch_billing failed with HTTP 401: Authentication error"):
        billing(vendor).fetch_billing(ACCOUNT)
    assert len(vendor.seen("GET")) == 2 and len(vendor.seen("POST", "/oauth/token")) == 2


def test_bad_client_credentials_name_the_variables(vendor: FakeVendor) -> None:
    vendor.on("POST", "/oauth/token", Reply(401, {"error": "invalid_client", "error_description": "Bad credentials"}))
    with pytest.raises(
        ConnectorAuthError, match="oauth token failed with HTTP 401: invalid_client: Bad credentials.*ZUORA_CLIENT_ID"
    ):
        billing(vendor).fetch_billing(ACCOUNT)


def test_static_access_token(vendor: FakeVendor) -> None:
    routes(vendor)
    billing(vendor, client_id=None, client_secret=None, access_token="static-token").fetch_billing(ACCOUNT)
    assert vendor.seen("POST", "/oauth/token") == []
    assert {r.header("Authorization") for r in vendor.seen("GET")} == {"Bearer static-token"}


def test_issue_credit_posts_a_credit_memo_with_the_idempotency_key(vendor: FakeVendor) -> None:
    routes(vendor)
    memo = {"id": "8ad08f0091698a7a01916e70df165b3b", "number": "CM00000010", "accountId": ACCOUNT_ID, "currency": "USD",
            "status": "Posted", "amount": 99.5, "source": "AdhocFromPrpc", "success": True}  # fmt: skip
    vendor.on("POST", "/v1/creditmemos", Reply(500, {"message": "Internal Server Error"}), Reply(200, memo))
    receipt = billing(vendor, credit_reason_code="Service outage").issue_credit(
        ACCOUNT, Decimal("99.50"), "USD", "dispute-CASE-1004-v1-d7", "dispute CASE-1004", case_id="CASE-1004"
    )
    assert receipt.kind == "credit" and receipt.reference == "CM00000010"
    assert receipt.amount == Decimal("99.50") and receipt.currency == "USD" and not receipt.replayed

    posts = vendor.seen("POST", "/v1/creditmemos")
    assert len(posts) == 2  # retried after the 500, with the same key
    assert {p.header("Idempotency-Key") for p in posts} == {"dispute-CASE-1004-v1-d7"}
    body = posts[0].json()
    assert body["accountId"] == ACCOUNT_ID and body["autoPost"] is True and body["reasonCode"] == "Service outage"
    assert body["charges"] == [{"productRatePlanChargeId": CHARGE_ID, "amount": 99.5, "comment": "dispute CASE-1004"}]
    assert "CASE-1004" in body["comment"] and "dispute-CASE-1004-v1-d7" in body["comment"]


def test_credit_memo_refused_in_a_200_is_refund_refused(vendor: FakeVendor) -> None:
    routes(vendor)
    vendor.on(
        "POST",
        "/v1/creditmemos",
        Reply(
            200, {"success": False, "reasons": [{"code": 53000130, "message": "The credit memo amount must be greater than 0."}]}
        ),
    )
    with pytest.raises(RefundRefused, match="53000130"):
        billing(vendor).issue_credit(ACCOUNT, Decimal("10.00"), "USD", "k1", "r")
    assert len(vendor.seen("POST", "/v1/creditmemos")) == 1


def test_credit_until_giving_up_is_a_provider_error_never_a_receipt(vendor: FakeVendor) -> None:
    routes(vendor)
    vendor.on("POST", "/v1/creditmemos", Reply(503, {"message": "Service Unavailable"}))
    with pytest.raises(ConnectorUnavailable, match="Zuora issue_credit failed with HTTP 503"):
        billing(vendor, max_attempts=3).issue_credit(ACCOUNT, Decimal("10.00"), "USD", "k1", "r")
    assert len(vendor.seen("POST", "/v1/creditmemos")) == 3


def test_lock_contention_in_a_200_is_retried(vendor: FakeVendor) -> None:
    routes(vendor)
    busy = Reply(
        200, {"success": False, "reasons": [{"code": 53000050, "message": "Operation failed due to a lock competition"}]}
    )
    vendor.on(
        "POST",
        "/v1/creditmemos",
        busy,
        Reply(200, {"id": "cm1", "number": "CM1", "amount": 10.0, "status": "Posted", "success": True}),
    )
    assert billing(vendor).issue_credit(ACCOUNT, Decimal("10.00"), "USD", "k1", "r").reference == "CM1"


def test_429_retry_after_is_honoured(vendor: FakeVendor) -> None:
    routes(vendor)
    vendor.on(
        "GET", f"/v1/accounts/{ACCOUNT}", Reply(429, {"message": "Too many requests"}, {"Retry-After": "0"}), account_reply()
    )
    assert billing(vendor).fetch_billing(ACCOUNT).subscription is not None
    assert len(vendor.seen("GET", f"/v1/accounts/{ACCOUNT}")) == 2


def test_credit_currency_mismatch_is_refused_before_posting(vendor: FakeVendor) -> None:
    routes(vendor)
    with pytest.raises(RefundRefused, match="credit in EUR on a Zuora account billed in USD"):
        billing(vendor).issue_credit(ACCOUNT, Decimal("10.00"), "EUR", "k1", "r")
    assert vendor.seen("POST", "/v1/creditmemos") == []


def test_credit_without_a_configured_charge_is_a_config_error(vendor: FakeVendor) -> None:
    with pytest.raises(ConnectorConfigError, match="ZUORA_CREDIT_CHARGE_ID"):
        billing(vendor, credit_charge_id=None).issue_credit(ACCOUNT, Decimal("10.00"), "USD", "k1", "r")
    assert vendor.requests == []


def test_timeout_on_reads_is_retried_then_reported(vendor: FakeVendor) -> None:
    vendor.on("POST", "/oauth/token", token())
    vendor.on("GET", f"/v1/accounts/{ACCOUNT}", Reply(200, {"success": True}, delay=0.5))
    with pytest.raises(ConnectorUnavailable, match="timed out"):
        billing(vendor, timeout_seconds=0.1, max_attempts=2).fetch_billing(ACCOUNT)
    assert len(vendor.seen("GET")) == 2


def test_http_404_names_vendor_operation_status_and_account(vendor: FakeVendor) -> None:
    routes(vendor)
    vendor.on(
        "GET",
        f"/v1/subscriptions/accounts/{ACCOUNT}",
        Reply(404, {"success": False, "reasons": [{"code": 50000040, "message": "Cannot find entity by key."}]}),
    )
    with pytest.raises(ConnectorNotFound) as caught:
        billing(vendor).fetch_billing(ACCOUNT)
    message = str(caught.value)
    assert message.startswith("Zuora fetch_billing subscriptions failed with HTTP 404: Zuora has no account CUST-00001")
    assert len(vendor.seen("GET", f"/v1/subscriptions/accounts/{ACCOUNT}")) == 1  # a 404 is not retried


def test_find_credits_matches_our_case_reference_on_the_accounts_memos(vendor: FakeVendor) -> None:
    """Reconciliation: the memo's comment carries `[case <id>, key ...]` (written by issue_credit)."""
    routes(vendor)
    memo = {"id": "m1", "number": "CM1", "status": "Posted", "amount": 80.0, "currency": "USD"}
    page1 = {"creditmemos": [
        {**memo, "comment": "goodwill [case CASE-10, key dispute-CASE-10]"},  # another case whose id starts alike
        {**memo, "number": "CM2", "status": "Cancelled", "comment": "x [case CASE-1, key dispute-CASE-1]"},
    ], "nextPage": f"{vendor.url}/v1/creditmemos?page=2&pageSize=40", "success": True}  # fmt: skip
    page2 = {"creditmemos": [{**memo, "number": "CM3", "comment": "dispute CASE-1 [case CASE-1, key dispute-CASE-1]"}],
             "success": True}  # fmt: skip
    vendor.on("GET", "/v1/creditmemos", Reply(200, page1), Reply(200, page2))
    [found] = billing(vendor).find_credits(ACCOUNT, "CASE-1")
    assert found.reference == "CM3" and found.amount == Decimal("80.00") and found.kind == "credit"
    assert vendor.seen("GET", "/v1/creditmemos")[0].query["accountId"] == [ACCOUNT_ID]
