"""Issue 4: the decision endpoint, the review sensor, execution that moves money once, the learning
loop, the four-eyes rule and the review SLA, against real Postgres, SQS and Chroma."""

from __future__ import annotations

import email
from email import policy

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context
from fastapi.testclient import TestClient

from dispute_platform.api.app import create_app
from dispute_platform.resources.limits import Limits
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.store import reviewers
from dispute_platform_tests.definitions import review_decision_sensor
from dispute_platform_tests.integration.harness import (
    build_test_resources,
    protected_routes,
    refunds,
    run_intake,
    run_review,
    sample_event,
    store_events,
)

pytestmark = pytest.mark.integration

CASES = ["CASE-1063", "CASE-1065", "CASE-1002", "CASE-1025", "CASE-1060"]
#         full_refund 49  credit 125   escalate 15000  full_refund 490  invalid (window)
TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789"}


@pytest.fixture
def world(db, sqs, pg_url, tmp_path, chroma_dir):
    instance = DagsterInstance.ephemeral()
    resources = build_test_resources(pg_url, sqs, tmp_path)
    store_events(db, [sample_event(c) for c in CASES])
    assert run_intake(instance, resources, CASES).success
    for name, token in TOKENS.items():
        db.transact(lambda cur, name=name, token=token: reviewers.add_reviewer(cur, name, token))
    return instance, resources


@pytest.fixture
def client(db, world):
    return TestClient(create_app(db, limits=Limits()))


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def decide(client, who, case_id, decision="approved", version=1, **extra):
    return client.post(
        "/human-review/decision",
        headers=auth(who),
        json={"case_id": case_id, "decision": decision, "proposal_version": version, **extra},
    )


def review_tick(instance, pg_url, sqs, resources, cursor=None):
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"postgres": PostgresResource(database_url=pg_url), "sqs": sqs, "email": resources["email"]},
    )
    return review_decision_sensor(context)


# --- the endpoint's answer table ---------------------------------------------------------------


def test_health_needs_no_token_and_reports_the_database(client):
    answer = client.get("/health")
    assert answer.status_code == 200 and answer.json()["database"] is True and answer.json()["version"]


def test_health_answers_503_when_the_database_or_the_queue_is_unreachable(db, sqs):
    import socket

    from dispute_platform.store.db import Database

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens there once the socket is closed
    gone = sqs.model_copy(update={"dispute_events_queue_url": sqs.dispute_events_queue_url + "-deleted"})

    no_queue = TestClient(create_app(db, limits=Limits(), queue_ping=gone.approximate_depth)).get("/health")
    assert no_queue.status_code == 503
    assert no_queue.json() | {"version": None} == {"status": "degraded", "database": True, "queue": False, "version": None}

    unreachable = Database(f"postgresql://postgres@127.0.0.1:{closed}/postgres")
    no_database = TestClient(create_app(unreachable, limits=Limits(), queue_ping=sqs.approximate_depth)).get("/health")
    assert no_database.status_code == 503
    assert no_database.json()["database"] is False and no_database.json()["queue"] is True
    assert no_database.json()["status"] == "degraded"

    healthy = TestClient(create_app(db, limits=Limits(), queue_ping=sqs.approximate_depth)).get("/health")
    assert healthy.status_code == 200 and healthy.json()["status"] == "ok"  # the same probes, both up


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YTpi"}])
def test_every_route_but_health_answers_401_without_a_valid_token(client, headers):
    for method, path in protected_routes(client.app):
        answer = getattr(client, method)(path, headers=headers, **({"json": {}} if method == "post" else {}))
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["detail"]


def test_pending_lists_proposals_oldest_first_with_age(client):
    answer = client.get("/human-review/pending", headers=auth("alice"))
    assert answer.status_code == 200
    pending = answer.json()["pending"]
    assert {p["case_id"] for p in pending} == {"CASE-1063", "CASE-1065", "CASE-1002", "CASE-1025"}
    created = [p["created_at"] for p in pending]
    assert created == sorted(created)
    assert all(p["age_hours"] >= 0 and p["version"] == 1 for p in pending)


def test_decision_answers_404_409_and_422_with_reasons(client, db):
    assert decide(client, "alice", "CASE-9999").status_code == 404
    assert client.post("/human-review/decision", headers=auth("alice"),
                       json={"run_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "decision": "approved", "proposal_version": 1}).status_code == 404  # fmt: skip
    bad = client.post(
        "/human-review/decision", headers=auth("alice"), json={"case_id": "CASE-1063", "decision": "maybe", "proposal_version": 1}
    )
    assert bad.status_code == 422
    over = decide(
        client, "alice", "CASE-1063", "modified", modified_resolution={"action": "partial_refund", "amount": 49.01, "reason": "x"}
    )
    assert over.status_code == 422 and "above the 49.00" in over.json()["detail"]
    escalation = decide(client, "alice", "CASE-1002")
    assert escalation.status_code == 422 and "escalated proposal" in escalation.json()["detail"]
    stale = decide(client, "alice", "CASE-1063", version=2)
    assert stale.status_code == 409 and "stale" in stale.json()["detail"]
    invalid = decide(client, "alice", "CASE-1060")
    assert invalid.status_code == 409 and "not pending review" in invalid.json()["detail"]

    ok = decide(client, "alice", "CASE-1063", reviewer_name="mallory")
    assert ok.status_code == 200, ok.text
    assert ok.json()["final"] is True and ok.json()["reviewer"] == "alice"
    again = decide(client, "bob", "CASE-1063")
    assert again.status_code == 409 and "not pending review" in again.json()["detail"]
    row = db.fetch_one("SELECT reviewer, source FROM review_decisions WHERE case_id = 'CASE-1063'")
    assert row == {"reviewer": "alice", "source": "api"}  # the token's name, not the body's


def test_a_decision_may_name_the_dispute_by_its_workflow_run_id(client, db):
    run_id = str(db.fetch_one("SELECT run_id FROM workflow_states WHERE case_id = 'CASE-1063'")["run_id"])
    other = str(db.fetch_one("SELECT run_id FROM workflow_states WHERE case_id = 'CASE-1065'")["run_id"])

    mismatch = client.post("/human-review/decision", headers=auth("alice"),
                           json={"run_id": other, "case_id": "CASE-1063", "decision": "approved", "proposal_version": 1})  # fmt: skip
    assert mismatch.status_code == 422 and "belongs to CASE-1065, not CASE-1063" in mismatch.json()["detail"]
    assert db.fetch_all("SELECT 1 FROM review_decisions") == []

    ok = client.post("/human-review/decision", headers=auth("alice"),
                     json={"run_id": run_id, "decision": "approved", "proposal_version": 1})  # fmt: skip
    assert ok.status_code == 200, ok.text
    assert ok.json()["case_id"] == "CASE-1063" and ok.json()["final"] is True
    rows = db.fetch_all("SELECT case_id, reviewer, decision FROM review_decisions")
    assert rows == [{"case_id": "CASE-1063", "reviewer": "alice", "decision": "approved"}]
    assert db.fetch_one("SELECT status FROM workflow_states WHERE case_id = 'CASE-1063'")["status"] == "decided"


def test_status_dispute_and_cost_routes(client, db):
    run_id = str(db.fetch_one("SELECT run_id FROM workflow_states WHERE case_id = 'CASE-1063'")["run_id"])
    status = client.get(f"/workflow/{run_id}/status", headers=auth("bob")).json()
    assert status["case_id"] == "CASE-1063" and status["status"] == "pending_review"
    assert [s["step"] for s in status["steps"]][:3] == ["intake", "raw_case", "enriched_context"]
    dispute = client.get("/disputes/CASE-1063", headers=auth("bob")).json()
    assert dispute["proposal"]["action"] == "full_refund" and dispute["decisions"] == [] and dispute["executions"] == []
    costs = client.get(f"/costs/workflow/{run_id}", headers=auth("bob")).json()
    assert costs["llm_cost"] == "0.000000" and costs["workflows"][0]["input_tokens"] > 0
    assert client.get("/costs/case/CASE-1063", headers=auth("bob")).json()["case_id"] == "CASE-1063"
    assert client.get("/workflow/not-a-uuid/status", headers=auth("bob")).status_code == 404
    assert client.get("/disputes/CASE-9999", headers=auth("bob")).status_code == 404
    assert client.get("/costs/case/CASE-9999", headers=auth("bob")).status_code == 404


# --- execution ---------------------------------------------------------------------------------


def test_approved_refund_executes_once_and_is_remembered(client, db, world, pg_url, sqs, tmp_path):
    instance, resources = world
    assert decide(client, "alice", "CASE-1063").status_code == 200
    tick = review_tick(instance, pg_url, sqs, resources)
    assert isinstance(tick, SensorResult)
    [request] = tick.run_requests
    assert request.partition_key == "CASE-1063" and request.run_key.startswith("review:CASE-1063:")

    assert run_review(instance, resources, "CASE-1063").success
    assert run_review(instance, resources, "CASE-1063").success  # a re-run moves nothing

    made = refunds(db)
    assert len(made) == 1 and str(made[0]["amount"]) == "49.00"
    assert made[0]["idempotency_key"] == "dispute-CASE-1063"  # one key per dispute's movement
    state = db.fetch_one("SELECT status, final_resolution, completed_at FROM workflow_states WHERE case_id = 'CASE-1063'")
    assert state["status"] == "completed" and state["completed_at"] is not None
    assert state["final_resolution"]["reference"] == made[0]["refund_id"]
    assert db.fetch_one("SELECT COUNT(*) AS n FROM executions WHERE case_id = 'CASE-1063'")["n"] == 1
    hits = resources["vectors"].collection("dispute_resolutions").get(ids=["CASE-1063"])
    assert hits["ids"] == ["CASE-1063"] and hits["metadatas"][0]["source"] == "platform"
    notice = [m for m in (tmp_path / "outbox").glob("*notice-CASE-1063*.eml")]
    assert len(notice) == 1
    body = email.message_from_bytes(notice[0].read_bytes(), policy=policy.default).get_content()
    assert "refunded 49.00 USD" in body
    events = [r["event"] for r in db.fetch_all("SELECT event FROM audit_log WHERE case_id = 'CASE-1063' ORDER BY id")]
    milestones = ["decision_approved", "executed", "customer_notified", "remembered"]
    assert [e for e in events if e in milestones][:4] == milestones
    assert events.count("executed") == 1


def test_a_crash_between_the_provider_call_and_the_database_write_pays_once(client, db, world):
    instance, resources = world
    real = resources["payments"]

    class CrashAfterRefund:
        def fetch_payments(self, customer_id):
            return real.fetch_payments(customer_id)

        def find_refunds(self, charge_id, case_id):
            return real.find_refunds(charge_id, case_id)

        def refund(self, *args, **kwargs):
            real.refund(*args, **kwargs)  # the money moves at the provider ...
            raise ConnectionError("process died before recording the refund")  # ... and we never hear back

    assert decide(client, "alice", "CASE-1025").status_code == 200
    # The step's own retry asks the provider first, finds the refund, and records it.
    assert run_review(instance, resources | {"payments": CrashAfterRefund()}, "CASE-1025").success
    failure = db.fetch_one("SELECT details FROM audit_log WHERE case_id = 'CASE-1025' AND event = 'execution_failed'")
    assert "process died" in failure["details"]["error"]
    made = refunds(db)
    assert len(made) == 1 and str(made[0]["amount"]) == "490.00"
    execution = db.fetch_one("SELECT status, attempts FROM executions WHERE case_id = 'CASE-1025'")
    assert execution["status"] == "succeeded" and execution["attempts"] >= 2
    final = db.fetch_one("SELECT final_resolution FROM workflow_states WHERE case_id = 'CASE-1025'")["final_resolution"]
    assert final["replayed"] is True


def test_rejected_decision_is_a_recorded_noop(client, db, world):
    instance, resources = world
    assert decide(client, "bob", "CASE-1065", "rejected", comments="customer already got a credit by phone").status_code == 200
    assert run_review(instance, resources, "CASE-1065").success
    assert refunds(db) == [] and db.fetch_all("SELECT * FROM sandbox_credits") == []
    final = db.fetch_one("SELECT status, final_resolution FROM workflow_states WHERE case_id = 'CASE-1065'")
    assert final["status"] == "completed" and final["final_resolution"]["outcome"] == "rejected"
    assert db.fetch_one("SELECT status FROM executions WHERE case_id = 'CASE-1065'")["status"] == "noop"


def test_modified_decision_executes_the_reviewers_amount(client, db, world):
    instance, resources = world
    answer = decide(
        client,
        "alice",
        "CASE-1065",
        "modified",
        modified_resolution={"action": "credit", "amount": 80, "reason": "partial goodwill"},
    )
    assert answer.status_code == 200 and answer.json()["effective_amount"] == "80"
    assert run_review(instance, resources, "CASE-1065").success
    [credit] = db.fetch_all("SELECT amount FROM sandbox_credits")
    assert str(credit["amount"]) == "80.00"
    review = db.fetch_one("SELECT human_review_data FROM workflow_states WHERE case_id = 'CASE-1065'")["human_review_data"]
    assert review["changed_from_proposal"]["amount"] == {"proposed": "125.00", "decided": "80"}


def test_four_eyes_above_the_threshold(client, db, world, pg_url, sqs):
    instance, resources = world
    first = decide(
        client, "alice", "CASE-1002", "modified", modified_resolution={"action": "full_refund", "amount": 1500, "reason": "dup"}
    )
    assert first.status_code == 200 and first.json()["final"] is False
    assert first.json()["dispute_status"] == "awaiting_second_review"
    assert not isinstance(review_tick(instance, pg_url, sqs, resources), SensorResult)  # nothing to execute yet
    assert decide(client, "alice", "CASE-1002").status_code == 409  # the same reviewer cannot be the second
    second = decide(client, "bob", "CASE-1002")
    assert second.status_code == 200 and second.json()["final"] is True
    assert second.json()["effective_amount"] == "1500.00"
    tick = review_tick(instance, pg_url, sqs, resources)
    assert [r.partition_key for r in tick.run_requests] == ["CASE-1002"]
    assert run_review(instance, resources, "CASE-1002").success
    assert [str(r["amount"]) for r in refunds(db)] == ["1500.00"]


def _ticket(client, who, case_id, version=1) -> str:
    answer = client.post("/human-review/tickets", headers=auth(who), json={"case_id": case_id, "proposal_version": version})
    assert answer.status_code == 200, answer.text
    assert f"ticket: {answer.json()['ticket']}" in answer.json()["launchpad_config"]
    return answer.json()["ticket"]


def test_launchpad_decision_goes_through_the_same_rules(client, db, world):
    instance, resources = world

    def launchpad(case_id, ticket):
        config = {"ops": {"review_decision": {"config": {"decision": "approved", "ticket": ticket, "comments": "from the UI"}}}}
        return run_review(instance, resources, case_id, run_config=config)

    assert launchpad("CASE-1063", _ticket(client, "bob", "CASE-1063")).success
    row = db.fetch_one("SELECT reviewer, source, effective_action FROM review_decisions WHERE case_id = 'CASE-1063'")
    assert row == {"reviewer": "bob", "source": "launchpad", "effective_action": "full_refund"}  # the ticket's reviewer
    assert len(refunds(db)) == 1
    refused = launchpad("CASE-1002", _ticket(client, "bob", "CASE-1002"))  # escalations cannot be approved
    assert not refused.success
    assert db.fetch_one("SELECT status FROM workflow_states WHERE case_id = 'CASE-1002'")["status"] == "pending_review"


def test_reviews_past_the_sla_are_escalated_and_still_decidable(client, db, world, pg_url, sqs, tmp_path):
    instance, resources = world
    db.transact(
        lambda cur: cur.execute("UPDATE proposals SET created_at = now() - interval '49 hours' WHERE case_id = 'CASE-1065'")
    )
    review_tick(instance, pg_url, sqs, resources)
    state = db.fetch_one("SELECT status, status_reason FROM workflow_states WHERE case_id = 'CASE-1065'")
    assert state["status"] == "review_escalated" and "48 h" in state["status_reason"]
    sla_mails = list((tmp_path / "outbox").glob("*sla-CASE-1065*.eml"))
    assert len(sla_mails) == 1
    assert "[SLA passed]" in email.message_from_bytes(sla_mails[0].read_bytes(), policy=policy.default)["Subject"]
    pending = {p["case_id"]: p for p in client.get("/human-review/pending", headers=auth("alice")).json()["pending"]}
    assert pending["CASE-1065"]["escalated"] is True and pending["CASE-1065"]["age_hours"] >= 49
    review_tick(instance, pg_url, sqs, resources)  # a second tick does not escalate again
    assert len(list((tmp_path / "outbox").glob("*sla-CASE-1065*.eml"))) == 1
    assert decide(client, "alice", "CASE-1065").status_code == 200
