"""Execution's own refusals and mishaps, against real PostgreSQL, the sandbox provider's ledger and
(for the CRM) the Salesforce connector on the local fake HTTP server:

1. the fresh refundable re-check refuses a refund the provider's books no longer allow;
2. a refund with no charge on record is refused before any provider call;
3. caps are evaluated at execution when the checks have not run (passing: executed; failing: refused);
4. a refusal the provider states is not retried; a transient error is, and pays once;
5. a failed customer notice (e-mail or CRM) is recorded, and the money stays moved.
"""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest
from dagster import DagsterInstance

from dispute_platform.domain.caps import CAP_NAMES, CapLimits
from dispute_platform.resources.connectors.salesforce import SalesforceCRM
from dispute_platform.resources.email import SmtpEmail
from dispute_platform.resources.providers import RefundRefused
from dispute_platform.workflow.execute import ExecutionRefused, execute_decision
from dispute_platform_tests.connectors.conftest import FAST, FakeVendor, Reply
from dispute_platform_tests.integration.harness import decide, run_review
from dispute_platform_tests.money.support import CREDIT_125, REFUND_49, REFUND_490, execute, ledger, pending, status

pytestmark = pytest.mark.integration


def _charge(db, case_id: str) -> str:
    return db.fetch_one("SELECT validation FROM workflow_states WHERE case_id = %s", (case_id,))["validation"][
        "disputed_charge_id"
    ]


def _execution(db, case_id: str) -> dict | None:
    return db.fetch_one("SELECT status, error, attempts FROM executions WHERE case_id = %s", (case_id,))


def _audit(db, case_id: str, event: str) -> list[dict]:
    return db.fetch_all("SELECT details FROM audit_log WHERE case_id = %s AND event = %s ORDER BY id", (case_id, event))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


# --- 1. the fresh refundable re-check -------------------------------------------------------------


def test_a_refund_the_providers_books_no_longer_allow_is_refused_before_the_call(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_49])
    decide(db, REFUND_49, "approved", "alice")  # full_refund 49.00, checked against 49.00 refundable
    # Meanwhile someone refunds 20.00 of the charge directly at the provider.
    outside = resources["payments"].refund(_charge(db, REFUND_49), Decimal("20.00"), "USD", "outside-1", "by hand",
                                           case_id="SUPPORT-DESK")  # fmt: skip

    with pytest.raises(RefundRefused, match=r"above the 29\.00 still refundable"):
        execute(db, resources, REFUND_49)

    assert [r["reference"] for r in ledger(db)] == [outside.reference]  # nothing more moved
    assert status(db, REFUND_49) == "execution_failed"
    row = _execution(db, REFUND_49)
    assert row["status"] == "failed" and "still refundable" in row["error"]
    [refused] = _audit(db, REFUND_49, "execution_refused")
    assert "still refundable" in refused["details"]["error"]


# --- 2. a refund with no charge on record ------------------------------------------------------------


def test_a_refund_with_no_charge_on_record_is_refused_and_nothing_moves(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_49])
    decide(db, REFUND_49, "approved", "alice")
    # The record of the disputed charge is gone (a hand edit, a migration): the refund has no target.
    db.transact(lambda cur: cur.execute(
        "UPDATE workflow_states SET validation = validation - 'disputed_charge_id' WHERE case_id = %s", (REFUND_49,)))  # fmt: skip

    with pytest.raises(RefundRefused, match="no disputed charge on record"):
        execute(db, resources, REFUND_49)

    assert ledger(db) == []
    assert status(db, REFUND_49) == "execution_failed" and _execution(db, REFUND_49)["status"] == "failed"


# --- 3. caps evaluated at execution ------------------------------------------------------------------


def _forget_checks(db, case_id: str) -> None:
    db.transact(lambda cur: cur.execute("DELETE FROM check_results WHERE case_id = %s", (case_id,)))


def test_execution_evaluates_the_caps_when_the_checks_have_not_run(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_49])
    _forget_checks(db, REFUND_49)  # a reviewer faster than the checks
    decide(db, REFUND_49, "approved", "alice")

    result = execute(db, resources, REFUND_49)

    assert result.status == "executed" and len(ledger(db, REFUND_49)) == 1
    checks = db.fetch_all(
        "SELECT check_name AS name, passed, proposal_version FROM check_results WHERE case_id = %s", (REFUND_49,)
    )
    assert sorted(c["name"] for c in checks) == sorted(CAP_NAMES) and all(
        c["passed"] and c["proposal_version"] == 1 for c in checks
    )


def test_an_unchecked_proposal_over_a_cap_is_refused_at_execution(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_49])
    _forget_checks(db, REFUND_49)
    decide(db, REFUND_49, "approved", "alice")

    with pytest.raises(ExecutionRefused, match="failed cap checks"):
        execute_decision(db, REFUND_49, payments=resources["payments"], billing=resources["billing"], crm=resources["crm"],
                         email=resources["email"], run_id=None, caps=CapLimits(max_output_tokens=1))  # fmt: skip

    assert ledger(db) == [] and _execution(db, REFUND_49) is None
    failed = db.fetch_all("SELECT check_name AS name FROM check_results WHERE case_id = %s AND NOT passed", (REFUND_49,))
    assert [r["name"] for r in failed] == ["output_tokens_within_cap"]
    assert status(db, REFUND_49) == "decided"  # a decision is never undone by a late check


# --- 4. a provider's refusal against a transient error -----------------------------------------------


class DownOnce:
    """The payments provider, unreachable for its first refund call (nothing moves), then fine."""

    def __init__(self, real):
        self.real, self.calls = real, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def refund(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("connection refused")
        return self.real.refund(*args, **kwargs)


def _execution_attempts(result) -> int:
    """How many times the run executed the executed_resolution step (1 + its retries)."""
    return sum(1 for e in result.all_events
               if e.step_key == "executed_resolution" and e.event_type_value in ("STEP_START", "STEP_RESTARTED"))  # fmt: skip


def _review_instance(case_id: str) -> DagsterInstance:
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("disputes", [case_id])
    return instance


def test_a_refusal_is_not_retried_and_a_transient_error_is(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_49, REFUND_490])
    decide(db, REFUND_49, "approved", "alice")
    decide(db, REFUND_490, "approved", "alice")

    # Refused: the provider's books no longer allow the refund. The run fails at once, unretried.
    payments = resources["payments"]
    payments.refund(_charge(db, REFUND_49), Decimal("49.00"), "USD", "outside-2", "by hand", case_id="SUPPORT-DESK")
    refused = run_review(_review_instance(REFUND_49), resources, REFUND_49)
    assert not refused.success
    assert _execution_attempts(refused) == 1
    assert status(db, REFUND_49) == "execution_failed" and _execution(db, REFUND_49)["status"] == "failed"
    assert len(_audit(db, REFUND_49, "execution_refused")) == 1 and ledger(db, REFUND_49) == []

    # Transient: the provider cannot be reached once. The step retries, reconciles, and pays once.
    flaky = DownOnce(payments)
    recovered = run_review(_review_instance(REFUND_490), resources | {"payments": flaky}, REFUND_490)
    assert recovered.success, [e.message for e in recovered.all_events if e.is_failure]
    assert _execution_attempts(recovered) == 2 and flaky.calls == 2
    assert status(db, REFUND_490) == "completed" and len(ledger(db, REFUND_490)) == 1
    row = _execution(db, REFUND_490)
    assert row["status"] == "succeeded" and row["attempts"] == 2
    [unknown] = _audit(db, REFUND_490, "execution_failed")
    assert "connection refused" in unknown["details"]["error"]


# --- 5. a failed customer notice ----------------------------------------------------------------------


SF_CASE = "500Hn00001XyZabIAF"  # the case's record id in Salesforce


def _salesforce(vendor: FakeVendor) -> SalesforceCRM:
    return SalesforceCRM(instance_url=vendor.url, access_token="00Dxx!token", case_id_field="CaseNumber", **FAST)


def _salesforce_case_routes(vendor: FakeVendor, case_id: str, *, fails: bool = False) -> None:
    """The case lookup, its status update and its comment, as Salesforce answers them."""
    vendor.on("GET", "/services/data/v60.0/query", Reply(body={"totalSize": 1, "done": True,
              "records": [{"attributes": {"type": "Case"}, "Id": SF_CASE}]}))  # fmt: skip
    failure = Reply(500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "An unexpected error occurred"}])
    vendor.on("PATCH", f"/services/data/v60.0/sobjects/Case/{SF_CASE}", failure if fails else Reply(204))
    vendor.on(
        "POST", "/services/data/v60.0/sobjects/CaseComment", failure if fails else Reply(201, {"id": "00a1", "success": True})
    )


def test_a_failed_notice_e_mail_is_recorded_and_the_crm_is_still_told(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [CREDIT_125])
    decide(db, CREDIT_125, "approved", "alice")
    unreachable_smtp = SmtpEmail(host="127.0.0.1", port=_closed_port(), sender="disputes@example.com", timeout_seconds=2)
    vendor = FakeVendor()
    try:
        _salesforce_case_routes(vendor, CREDIT_125)
        result = execute(db, resources, CREDIT_125, email=unreachable_smtp, crm=_salesforce(vendor))
        crm_writes = [(r.method, r.path) for r in vendor.requests if r.method in ("PATCH", "POST")]
    finally:
        vendor.close()

    assert result.status == "executed" and status(db, CREDIT_125) == "executed"
    assert len(ledger(db, CREDIT_125)) == 1  # the money moved; the notice is not a reason to undo or redo it
    [notice] = _audit(db, CREDIT_125, "customer_notified")
    assert "email" not in notice["details"] and "ConnectionRefusedError" in notice["details"]["error"]
    # The e-mail failed, yet the CRM case is closed with the outcome.
    assert ("PATCH", f"/services/data/v60.0/sobjects/Case/{SF_CASE}") in crm_writes
    assert execute(db, resources, CREDIT_125).status == "already_done" and len(ledger(db, CREDIT_125)) == 1


def test_a_failed_crm_update_is_recorded_and_the_e_mail_still_goes(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [CREDIT_125])
    decide(db, CREDIT_125, "approved", "alice")
    vendor = FakeVendor()
    try:
        _salesforce_case_routes(vendor, CREDIT_125, fails=True)
        result = execute(db, resources, CREDIT_125, crm=_salesforce(vendor))
    finally:
        vendor.close()

    assert result.status == "executed" and len(ledger(db, CREDIT_125)) == 1
    [notice] = _audit(db, CREDIT_125, "customer_notified")
    assert notice["details"]["email"] and "500" in notice["details"]["error"]
    assert len(list((tmp_path / "outbox").glob(f"*notice-{CREDIT_125}*.eml"))) == 1
