"""Issue 3: knowledge in Chroma, proposals that follow the policies, and the blocking cap checks."""

from __future__ import annotations

from decimal import Decimal

import pytest
from dagster import DagsterInstance

from dispute_platform.domain.knowledge import dispute_query_text
from dispute_platform.domain.review import DecisionRefused
from dispute_platform.resources.limits import Limits
from dispute_platform.store import reviewers
from dispute_platform.workflow.execute import ExecutionRefused, execute_decision
from dispute_platform_tests.integration.harness import (
    build_test_resources,
    decide,
    metadata_for,
    reviewer,
    run_intake,
    sample_event,
    sample_events,
    store_events,
)

pytestmark = pytest.mark.integration

# What the policies decide for some of the sample disputes (see docs/sandbox.md).
EXPECTED = {
    "CASE-1063": ("full_refund", "49.00"),  # duplicate on the same invoice
    "CASE-1004": ("credit", "99.50"),  # 30 h outage: 50% of the monthly fee
    "CASE-1021": ("credit", "4.90"),  # exactly 1 h: 10%
    "CASE-1020": ("credit", "375.00"),  # exactly 24 h: 25%
    "CASE-1025": ("full_refund", "490.00"),  # annual, cancelled on day 14
    "CASE-1022": ("partial_refund", "449.17"),  # annual, day 15: 11/12
    "CASE-1042": ("deny", "0.00"),  # annual, day 31
    "CASE-1035": ("full_refund", "1000.00"),  # exactly the threshold: not escalated
    "CASE-1002": ("escalate", "15000.00"),  # above $1,000: escalated
    "CASE-1023": ("escalate", "199.00"),  # unauthorized: always escalated
    "CASE-1046": ("full_refund", "25.00"),  # first late fee in 12 months
    "CASE-1028": ("deny", "0.00"),  # second late fee
    "CASE-1052": ("partial_refund", "10.00"),  # wrong amount: the difference
    "CASE-1034": ("full_refund", "240.00"),  # not delivered after 20 days
    "CASE-1065": ("credit", "125.00"),  # enterprise goodwill
    "CASE-1045": ("escalate", "0.00"),  # smb general complaint
    "CASE-1027": ("full_refund", "19.00"),  # duplicate; the text asks for $5000
}


@pytest.fixture
def proposed(db, sqs, pg_url, tmp_path, chroma_dir):
    """All sample disputes taken through intake with the precedent provider."""
    instance = DagsterInstance.ephemeral()
    resources = build_test_resources(pg_url, sqs, tmp_path)
    store_events(db, sample_events())
    keys = [e["case_id"] for e in sample_events()]
    result = run_intake(instance, resources, keys)
    assert result.success
    return instance, resources, result


def test_proposals_follow_the_policies(db, proposed):
    rows = {r["case_id"]: r for r in db.fetch_all("SELECT * FROM proposals")}
    for case_id, (action, amount) in EXPECTED.items():
        assert (rows[case_id]["action"], str(rows[case_id]["amount"])) == (action, amount), case_id
    injected = rows["CASE-1027"]
    assert "injection_suspected" in injected["flags"]
    states = {r["case_id"]: r["status"] for r in db.fetch_all("SELECT case_id, status FROM workflow_states")}
    assert all(states[c] == "pending_review" for c in EXPECTED)
    # Every proposal cites at least one policy and records its prompt size within the cap.
    assert all(r["proposal"]["cited_policies"] for r in rows.values())
    assert max(r["input_tokens"] for r in rows.values()) <= 2075


def test_checks_pass_with_their_figures_and_are_recorded(db, proposed):
    _, _, result = proposed
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    proposals = {r["case_id"]: r["version"] for r in db.fetch_all("SELECT case_id, version FROM proposals")}
    # One evaluation per dispute and per cap, each naming its dispute; a dispute with no proposal
    # (stopped by validation) says it had nothing to check.
    keys = {e["case_id"] for e in sample_events()}
    assert sorted((e.partition, e.check_name) for e in evaluations) == sorted((case_id, name) for case_id in keys for name in (
        "input_tokens_within_cap", "output_tokens_within_cap", "cost_within_cap", "amount_within_refundable"))  # fmt: skip
    assert {e.partition for e in evaluations if "checked" in e.metadata} == keys - set(proposals)
    assert all(e.passed for e in evaluations)
    tokens = next(e for e in evaluations if e.check_name == "input_tokens_within_cap" and e.partition == "CASE-1063")
    assert tokens.metadata["cap"].value == 2075 and 0 < tokens.metadata["figure"].value <= 2075
    assert "max_figure" not in tokens.metadata  # a dispute's own figure, no batch figure
    row = db.fetch_one("SELECT figure FROM check_results WHERE case_id = 'CASE-1063' AND check_name = 'input_tokens_within_cap'")
    assert tokens.metadata["figure"].value == float(row["figure"])
    amount = next(e for e in evaluations if e.check_name == "amount_within_refundable" and e.partition == "CASE-1002")
    assert amount.metadata["figure"].value == 15000.0  # its own figure, beside its own cap
    counts = db.fetch_all("SELECT check_name, COUNT(*) AS n, bool_and(passed) AS ok FROM check_results GROUP BY 1")
    assert {r["check_name"]: (r["n"], r["ok"]) for r in counts} == {name: (len(proposals), True) for name in (
        "input_tokens_within_cap", "output_tokens_within_cap", "cost_within_cap", "amount_within_refundable")}  # fmt: skip


def test_proposal_metadata_and_reviewer_notifications(db, proposed, sqs, tmp_path):
    _, _, result = proposed
    meta = metadata_for(result, "ai_proposal", "CASE-1063")
    assert meta["action"] == "full_refund" and meta["amount"] == 49.0 and meta["cost_usd"] == 0.0
    assert meta["input_tokens"] > 0 and "POL-002" in meta["summary"]
    pending = db.fetch_one("SELECT COUNT(*) AS n FROM workflow_states WHERE status = 'pending_review'")["n"]
    mails = list((tmp_path / "outbox").glob("*.eml"))
    assert len(mails) == pending
    import email
    from email import policy

    message = email.message_from_bytes(next(m for m in mails if "CASE-1063" in m.name).read_bytes(), policy=policy.default)
    text = message.get_content()
    assert message["To"] == "approvers@brightwave.example" and "CASE-1063" in message["Subject"]
    assert "full_refund 49.00" in text and "/assets/ai_proposal?partition=CASE-1063" in text and "/human-review/decision" in text
    from dispute_platform_tests.conftest import drain

    assert len(drain(sqs, sqs.human_review_queue_url)) == pending


def test_similar_past_duplicate_is_retrieved_from_chroma(proposed):
    _, resources, _ = proposed
    vectors = resources["vectors"]
    text = dispute_query_text(
        "duplicate_charge",
        Decimal("49.00"),
        "smb",
        "I was charged twice for the same monthly invoice, please refund the extra charge",
    )
    hits = vectors.query_similar_cases(text, k=3, dispute_type="duplicate_charge")
    assert len(hits) == 3
    assert all(h.dispute_type == "duplicate_charge" for h in hits)
    assert any(h.action == "full_refund" for h in hits)
    assert all(0 <= h.score <= 1 for h in hits)
    policies = vectors.query_policies(text, k=3, categories=["duplicate_charge", "general"])
    assert any(p.policy_id == "POL-002" for p in policies)


def test_a_proposal_over_a_cap_is_blocked_and_can_never_be_executed(db, sqs, pg_url, tmp_path, chroma_dir):
    instance = DagsterInstance.ephemeral()
    tight = Limits(max_output_tokens=16)  # the rules engine's reply is larger than this
    resources = build_test_resources(pg_url, sqs, tmp_path, limits=tight)
    store_events(db, [sample_event("CASE-1063")])

    result = run_intake(instance, resources, ["CASE-1063"])

    evaluations = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert evaluations["output_tokens_within_cap"].passed is False
    assert evaluations["output_tokens_within_cap"].metadata["cap"].value == 16
    state = db.fetch_one("SELECT status, status_reason FROM workflow_states WHERE case_id = 'CASE-1063'")
    assert state["status"] == "blocked" and "output_tokens_within_cap" in state["status_reason"]
    assert list((tmp_path / "outbox").glob("*.eml")) == []  # no reviewer is asked about it

    with pytest.raises(DecisionRefused) as refused:
        decide(db, "CASE-1063", "approved", "alice")
    assert refused.value.status_code == 409
    # Even if someone forced the state, execution refuses a proposal that failed a check.
    mallory = reviewer(db, "mallory")
    db.transact(lambda cur: (
        reviewers.insert_decision(cur, case_id="CASE-1063", version=1, decision="approved", reviewer=mallory, comments="",
                                  modified=None, effective_action="full_refund", effective_amount=Decimal("49.00"), source="api"),
        cur.execute("UPDATE workflow_states SET status = 'decided' WHERE case_id = 'CASE-1063'"),
    ))  # fmt: skip
    with pytest.raises(ExecutionRefused, match="failed cap checks"):
        execute_decision(db, "CASE-1063", payments=resources["payments"], billing=resources["billing"],
                         crm=resources["crm"], email=resources["email"], run_id=None, caps=tight.caps)  # fmt: skip
    assert db.fetch_one("SELECT COUNT(*) AS n FROM sandbox_refunds")["n"] == 0


def test_failed_reviewer_notifications_are_audited_and_the_proposal_still_waits(db, sqs, pg_url, tmp_path, chroma_dir):
    import socket

    from dispute_platform.resources.email import SmtpEmail
    from dispute_platform.store import repo

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens there once the socket is closed
    unreachable_smtp = SmtpEmail(host="127.0.0.1", port=closed, sender="disputes@example.com", timeout_seconds=2)
    # A new resource, not a model_copy: Dagster builds a run's resources from their configuration.
    no_review_queue = type(sqs)(**sqs.model_dump() | {"human_review_queue_url": sqs.human_review_queue_url + "-deleted"})
    resources = build_test_resources(pg_url, no_review_queue, tmp_path) | {"email": unreachable_smtp}
    store_events(db, [sample_event("CASE-1063")])

    result = run_intake(DagsterInstance.ephemeral(), resources, ["CASE-1063"])

    assert result.success  # a notification is never a reason to fail the proposal
    state = db.fetch_one("SELECT status, proposal_version FROM workflow_states WHERE case_id = 'CASE-1063'")
    assert state == {"status": "pending_review", "proposal_version": 1}
    [failed] = db.fetch_all("SELECT details FROM audit_log WHERE case_id = 'CASE-1063' AND event = 'notification_failed'")
    errors = failed["details"]["errors"]
    assert "ConnectionRefusedError" in errors["email"] and "NonExistentQueue" in errors["review_queue"]
    assert failed["details"]["sent"] == {} and failed["details"]["version"] == 1
    assert db.fetch_all("SELECT 1 FROM audit_log WHERE event = 'reviewers_notified'") == []
    assert [r["case_id"] for r in db.transact(repo.pending_reviews)] == ["CASE-1063"]  # listed for reviewers all the same
    from dispute_platform_tests.conftest import drain

    assert drain(sqs, sqs.human_review_queue_url) == []
