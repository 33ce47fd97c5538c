"""SalesforceCRM against a local server answering in the REST API's documented shapes."""

from __future__ import annotations

import time
from datetime import date, datetime
from decimal import Decimal

import pytest

from dispute_platform.resources.connectors.http import ConnectorAuthError, ConnectorDataError, ConnectorUnavailable
from dispute_platform.resources.connectors.salesforce import SalesforceCRM, soql_literal
from dispute_platform.resources.providers import CaseNotFound, CRMProvider, ProviderError
from dispute_platform_tests.connectors.conftest import FAST, FakeVendor, Reply

QUERY = "/services/data/v60.0/query"
CASE_ID = "500Hn00001XyZabIAF"
ACCOUNT_ID = "001Hn00001AbCdeIAF"


def case_record(**overrides) -> dict:
    record = {
        "attributes": {"type": "Case", "url": f"/services/data/v60.0/sobjects/Case/{CASE_ID}"},
        "Id": CASE_ID,
        "CaseNumber": "00001001",
        "AccountId": ACCOUNT_ID,
        "Subject": "Trial environment down during training",
        "Description": "The trial workspace was down for 3 hours during the training session we paid for.",
        "Status": "New",
        "Origin": "Web",
        "CreatedDate": "2026-10-05T08:13:00.000+0000",
        "Amount__c": 300.0,
        "Currency__c": "usd",
        "Dispute_Type__c": "Service Outage",
        "Charge_Id__c": "ch_rh7ky59pcRLRW3",
        "Account": {
            "attributes": {"type": "Account", "url": f"/services/data/v60.0/sobjects/Account/{ACCOUNT_ID}"},
            "Id": ACCOUNT_ID,
            "Name": "Evergreen Financial Group Ltd",
            "BillingCountry": "US",
            "CreatedDate": "2025-10-25T10:00:00.000+0000",
            "Customer_Segment__c": "Mid-Market",
            "Account_Status__c": "Active",
            "Standing__c": "Past Due",
            "Phone": "+1 (919) 555-0076",
        },
    }
    record.update(overrides)
    return record


def query_reply(*records: dict, next_url: str | None = None) -> Reply:
    body = {"totalSize": len(records), "done": next_url is None, "records": list(records)}
    if next_url:
        body["nextRecordsUrl"] = next_url
    return Reply(200, body)


def crm(vendor: FakeVendor, **config) -> SalesforceCRM:
    return SalesforceCRM(instance_url=vendor.url, access_token="00Dxx!token", **{**FAST, **config})


def test_fetch_case_maps_case_account_and_sends_a_bound_query(vendor: FakeVendor) -> None:
    vendor.on("GET", QUERY, query_reply(case_record()))
    record = crm(vendor).fetch_case(CASE_ID)

    assert isinstance(crm(vendor), CRMProvider)
    assert record.case.case_id == CASE_ID
    assert record.case.customer_id == ACCOUNT_ID
    assert record.case.dispute_type == "service_outage"
    assert record.case.amount == Decimal("300.00") and record.case.currency == "USD"
    assert record.case.charge_id == "ch_rh7ky59pcRLRW3"
    assert record.case.opened_at == datetime.fromisoformat("2026-10-05T08:13:00+00:00")
    assert record.case.origin == "web" and record.case.status == "new"
    assert record.account.segment == "mid_market" and record.account.standing == "past_due"
    assert record.account.created_at == date(2025, 10, 25) and record.account.phone == "+1 (919) 555-0076"
    assert record.incidents == []

    (request,) = vendor.seen("GET", QUERY)
    assert request.header("Authorization") == "Bearer 00Dxx!token"
    soql = request.query["q"][0]
    assert soql.startswith("SELECT Id, CaseNumber, AccountId,")
    assert "Account.Customer_Segment__c" in soql
    assert soql.endswith(f"FROM Case WHERE Id = '{CASE_ID}' LIMIT 2")


def test_injected_case_id_never_reaches_soql(vendor: FakeVendor) -> None:
    vendor.on("GET", QUERY, query_reply())
    injected = "CASE-1' OR Id != '"
    for field in ("Id", "CaseNumber", "Case_Key__c"):
        with pytest.raises(CaseNotFound):
            crm(vendor, case_id_field=field).fetch_case(injected)
    assert vendor.requests == []


def test_soql_literal_escapes_per_salesforce_rules() -> None:
    assert soql_literal("CASE-1' OR Id != '") == "'CASE-1\\' OR Id != \\''"
    assert soql_literal('a\\b"c\nd') == "'a\\\\b\\\"c\\nd'"


def test_external_id_field_is_quoted(vendor: FakeVendor) -> None:
    vendor.on("GET", QUERY, query_reply(case_record()))
    record = crm(vendor, case_id_field="Case_Key__c").fetch_case("CASE-1001")
    assert record.case.case_id == "CASE-1001"
    assert vendor.requests[0].query["q"][0].endswith("WHERE Case_Key__c = 'CASE-1001' LIMIT 2")


def test_missing_case_is_case_not_found(vendor: FakeVendor) -> None:
    vendor.on("GET", QUERY, query_reply())
    with pytest.raises(CaseNotFound, match="does not exist"):
        crm(vendor).fetch_case(CASE_ID)


def test_unknown_segment_is_a_data_error_not_a_guess(vendor: FakeVendor) -> None:
    record = case_record()
    record["Account"]["Customer_Segment__c"] = "Galactic"
    vendor.on("GET", QUERY, query_reply(record))
    with pytest.raises(ConnectorDataError, match="Customer_Segment__c='Galactic'"):
        crm(vendor).fetch_case(CASE_ID)


def test_incidents_follow_next_records_url(vendor: FakeVendor) -> None:
    def incident(n: int) -> dict:
        return {
            "attributes": {"type": "Service_Incident__c"},
            "Id": f"a01Hn0000000{n:03d}IAF",
            "Name": f"INC-{n:04d}",
            "Started_At__c": "2026-10-01T00:00:00.000+0000",
            "Ended_At__c": "2026-10-02T06:00:00.000+0000",
            "Summary__c": "API outage",
            "Scheduled_Maintenance__c": False,
        }

    def route(seen):
        if "FROM Case" in seen.query["q"][0]:
            return query_reply(case_record())
        return query_reply(incident(1), next_url="/services/data/v60.0/query/01gHn000000abcd-2000")

    vendor.on("GET", QUERY, route)
    vendor.on("GET", "/services/data/v60.0/query/01gHn000000abcd-2000", query_reply(incident(2)))
    record = crm(vendor, incident_object="Service_Incident__c").fetch_case(CASE_ID)
    assert [i.incident_id for i in record.incidents] == ["INC-0001", "INC-0002"]
    assert record.incidents[0].hours == Decimal("30.00")
    incident_soql = vendor.seen("GET", QUERY)[1].query["q"][0]
    assert f"WHERE Account__c = '{ACCOUNT_ID}' AND Started_At__c = LAST_N_DAYS:400" in incident_soql


def test_next_records_url_to_another_host_is_refused(vendor: FakeVendor) -> None:
    def route(seen):
        if "FROM Case" in seen.query["q"][0]:
            return query_reply(case_record())
        return query_reply(next_url="https://evil.example/services/data/v60.0/query/x")

    vendor.on("GET", QUERY, route)
    with pytest.raises(ConnectorDataError, match="another host"):
        crm(vendor, incident_object="Service_Incident__c").fetch_case(CASE_ID)


def test_401_fails_at_once_with_vendor_operation_and_status(vendor: FakeVendor) -> None:
    vendor.on("GET", QUERY, Reply(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]))
    with pytest.raises(ConnectorAuthError) as caught:
        crm(vendor).fetch_case(CASE_ID)
    message = str(caught.value)
    assert "Salesforce fetch_case failed with HTTP 401" in message and "INVALID_SESSION_ID" in message
    assert "00Dxx!token" not in message
    assert len(vendor.requests) == 1


def test_429_honours_retry_after_capped(vendor: FakeVendor) -> None:
    limited = Reply(429, [{"message": "Too many requests", "errorCode": "REQUEST_LIMIT_EXCEEDED"}], {"Retry-After": "1"})
    vendor.on("GET", QUERY, limited, query_reply(case_record()))
    started = time.monotonic()
    crm(vendor).fetch_case(CASE_ID)
    elapsed = time.monotonic() - started
    assert len(vendor.requests) == 2
    assert 0.2 <= elapsed < 0.9  # waited Retry-After, capped at 0.2 s by configuration


def test_500_then_success_is_retried(vendor: FakeVendor) -> None:
    vendor.on("GET", QUERY, Reply(500, [{"message": "boom", "errorCode": "UNKNOWN_EXCEPTION"}]), query_reply(case_record()))
    assert crm(vendor).fetch_case(CASE_ID).case.case_id == CASE_ID
    assert len(vendor.requests) == 2


def test_500_until_giving_up_is_a_provider_error(vendor: FakeVendor) -> None:
    vendor.on("GET", QUERY, Reply(503, [{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}]))
    with pytest.raises(ConnectorUnavailable) as caught:
        crm(vendor, max_attempts=3).fetch_case(CASE_ID)
    assert isinstance(caught.value, ProviderError)
    assert "HTTP 503" in str(caught.value) and "3 attempts" in str(caught.value)
    assert len(vendor.requests) == 3


def test_timeout_is_retried_then_reported(vendor: FakeVendor) -> None:
    vendor.on("GET", QUERY, Reply(200, {"done": True, "records": []}, delay=0.5))
    started = time.monotonic()
    with pytest.raises(ConnectorUnavailable, match="timed out"):
        crm(vendor, timeout_seconds=0.1, max_attempts=2).fetch_case(CASE_ID)
    assert len(vendor.requests) == 2
    assert time.monotonic() - started < 2


def test_record_outcome_patches_status_and_adds_a_comment(vendor: FakeVendor) -> None:
    case_path = f"/services/data/v60.0/sobjects/Case/{CASE_ID}"
    vendor.on("PATCH", case_path, Reply(204))
    vendor.on(
        "POST", "/services/data/v60.0/sobjects/CaseComment", Reply(201, {"id": "00aHn000001", "success": True, "errors": []})
    )
    crm(vendor, status_values={"Closed": "Closed - Resolved"}).record_outcome(CASE_ID, "Closed", "credit 99.50 USD")
    (patch,) = vendor.seen("PATCH", case_path)
    assert patch.json() == {"Status": "Closed - Resolved"}
    (comment,) = vendor.seen("POST")
    assert comment.json() == {"ParentId": CASE_ID, "CommentBody": "credit 99.50 USD", "IsPublished": False}


def test_record_outcome_comment_is_not_retried_after_a_5xx(vendor: FakeVendor) -> None:
    vendor.on("PATCH", f"/services/data/v60.0/sobjects/Case/{CASE_ID}", Reply(204))
    vendor.on(
        "POST", "/services/data/v60.0/sobjects/CaseComment", Reply(500, [{"message": "boom", "errorCode": "UNKNOWN_EXCEPTION"}])
    )
    with pytest.raises(ConnectorUnavailable, match="not idempotent"):
        crm(vendor).record_outcome(CASE_ID, "Closed", "refund")
    assert len(vendor.seen("POST")) == 1


def test_record_outcome_by_case_number_looks_up_the_id(vendor: FakeVendor) -> None:
    vendor.on("GET", QUERY, query_reply({"attributes": {"type": "Case"}, "Id": CASE_ID}))
    vendor.on("PATCH", f"/services/data/v60.0/sobjects/Case/{CASE_ID}", Reply(204))
    crm(vendor, case_id_field="CaseNumber").record_outcome("00001001", "Closed", "")
    assert vendor.seen("GET")[0].query["q"][0] == "SELECT Id FROM Case WHERE CaseNumber = '00001001' LIMIT 2"
    assert len(vendor.seen("PATCH")) == 1 and vendor.seen("POST") == []


def test_client_credentials_token_is_fetched_cached_and_refreshed_on_401(vendor: FakeVendor) -> None:
    tokens = iter(["tok-1", "tok-2"])
    vendor.on(
        "POST",
        "/services/oauth2/token",
        lambda seen: Reply(200, {"access_token": next(tokens), "instance_url": vendor.url, "token_type": "Bearer"}),
    )

    def route(seen):
        if seen.header("Authorization") == "Bearer tok-1" and len(vendor.seen("GET", QUERY)) > 1:
            return Reply(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        return query_reply(case_record())

    vendor.on("GET", QUERY, route)
    client = SalesforceCRM(instance_url=vendor.url, client_id="cid", client_secret="csecret", **FAST)
    client.fetch_case(CASE_ID)
    client.fetch_case(CASE_ID)  # 401 with tok-1 -> one refresh -> tok-2
    token_requests = vendor.seen("POST", "/services/oauth2/token")
    assert len(token_requests) == 2
    assert token_requests[0].form() == {"grant_type": ["client_credentials"], "client_id": ["cid"], "client_secret": ["csecret"]}
    assert [r.header("Authorization") for r in vendor.seen("GET", QUERY)] == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_a_value_the_models_refuse_is_a_data_error_naming_the_field(vendor: FakeVendor) -> None:
    vendor.on("GET", QUERY, query_reply(case_record(Currency__c="US Dollar")))
    with pytest.raises(ConnectorDataError, match="Salesforce fetch_case failed: unusable value for currency"):
        crm(vendor).fetch_case(CASE_ID)


def test_record_outcome_on_a_deleted_case_is_case_not_found(vendor: FakeVendor) -> None:
    vendor.on(
        "PATCH",
        f"/services/data/v60.0/sobjects/Case/{CASE_ID}",
        Reply(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]),
    )
    with pytest.raises(CaseNotFound, match="no longer exists"):
        crm(vendor).record_outcome(CASE_ID, "Closed", "refund")
    assert len(vendor.requests) == 1 and vendor.seen("POST") == []
