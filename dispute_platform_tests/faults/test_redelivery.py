"""At-least-once delivery: every event arrives three times or more (in one receive, after a tick
that died before deleting, and re-published after it was processed). One partition, one
proposal and at most one refund per dispute, taken through approval and execution."""

from __future__ import annotations

import json
import time

import pytest
from dagster import DagsterInstance, SensorResult, SkipReason, build_sensor_context

from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.sqs import SQSResource
from dispute_platform_tests.conftest import drain
from dispute_platform_tests.definitions import review_decision_sensor
from dispute_platform_tests.faults.support import apply_sensor_result, sqs_tick
from dispute_platform_tests.integration.harness import REVIEW, build_test_resources, decide, refunds, sample_event

pytestmark = pytest.mark.integration

CASES = ["CASE-1063", "CASE-1065", "CASE-1002", "CASE-1025", "CASE-1001"]


class DiesBeforeDelete(SQSResource):
    """A tick that stores its batch and dies before deleting the messages (a daemon crash)."""

    def delete(self, messages, queue_url=None):  # noqa: ARG002
        raise RuntimeError("sensor process killed before it deleted the batch")


def _events() -> list[dict]:
    events = [sample_event(c) for c in CASES]
    events[-1] = {k: v for k, v in events[-1].items() if k != "event_id"}  # identified by its content digest
    return events


def test_every_event_three_times_gives_one_partition_one_proposal_one_refund(db, sqs, pg_url, tmp_path, chroma_dir):
    instance = DagsterInstance.ephemeral()
    resources = build_test_resources(pg_url, sqs, tmp_path)
    events = _events()
    deliveries = {e["case_id"]: 0 for e in events}

    # 1. Delivered, plus two events published twice; the tick stores them and dies before deleting.
    sqs.send_many(events + events[:2])
    dying = DiesBeforeDelete(**{**sqs.model_dump(), "visibility_timeout_seconds": 1})
    with pytest.raises(RuntimeError, match="killed before it deleted"):
        sqs_tick(instance, dying, pg_url)
    for e in events + events[:2]:
        deliveries[e["case_id"]] += 1
    assert db.fetch_one("SELECT COUNT(*) AS n FROM dispute_events")["n"] == len(events)

    # 2. SQS redelivers the same messages once their visibility runs out; the sensor has no cursor
    #    (its answer was lost with the tick), so it derives the new disputes from Postgres.
    time.sleep(1.5)
    answer = sqs_tick(instance, sqs, pg_url)
    assert isinstance(answer, SensorResult)
    for e in events + events[:2]:
        deliveries[e["case_id"]] += 1
    added = list(answer.dynamic_partitions_requests[0].partition_keys)
    assert sorted(added) == sorted(CASES)
    assert [r.run_key for r in answer.run_requests] == ["intake:1-5"]
    runs = apply_sensor_result(instance, answer, resources)
    assert runs and all(r.success for r in runs)

    # 3. Re-published after processing: stored nothing, started nothing.
    sqs.send_many(events)
    for e in events:
        deliveries[e["case_id"]] += 1
    again = sqs_tick(instance, sqs, pg_url, cursor=answer.cursor)
    assert isinstance(again, SkipReason), again

    # 4. The sensor's cursor lost (reset): the same disputes come back as run requests for
    #    partitions that already exist; running them changes nothing.
    lost = sqs_tick(instance, sqs, pg_url, cursor=None)
    assert isinstance(lost, SensorResult)
    assert lost.dynamic_partitions_requests[0].partition_keys == []
    assert {r.partition_key for r in lost.run_requests} == set(CASES)
    assert all(r.success for r in apply_sensor_result(instance, lost, resources))

    assert min(deliveries.values()) >= 3, deliveries
    assert drain(sqs, sqs.dispute_events_queue_url) == []
    partitions = instance.get_dynamic_partitions("disputes")
    assert sorted(partitions) == sorted(CASES) and len(partitions) == len(set(partitions))
    per_case = {r["case_id"]: r["n"] for r in db.fetch_all("SELECT case_id, COUNT(*) AS n FROM dispute_events GROUP BY case_id")}
    assert per_case == {c: 1 for c in CASES}
    proposals = {r["case_id"]: r["n"] for r in db.fetch_all("SELECT case_id, COUNT(*) AS n FROM proposals GROUP BY case_id")}
    assert proposals == {c: 1 for c in CASES}, proposals
    assert db.fetch_one("SELECT COUNT(*) AS n FROM workflow_states")["n"] == len(CASES)
    received = db.fetch_all("SELECT case_id, COUNT(*) AS n FROM audit_log WHERE event = 'event_received' GROUP BY case_id")
    assert {r["case_id"]: r["n"] for r in received} == {c: 1 for c in CASES}
    reviews = drain(sqs, sqs.human_review_queue_url)
    notified = [json.loads(b)["case_id"] for b in reviews]
    assert sorted(notified) == sorted(set(notified)), "a reviewer was told twice about one proposal"

    # 5. Approve one refund; the decision reaches execution three times (sensor, cursor lost, re-run).
    decide(db, "CASE-1063", "approved", "alice", comments="dup")
    review_resources = {"postgres": PostgresResource(database_url=pg_url), "sqs": sqs, "email": resources["email"]}
    first = review_decision_sensor(build_sensor_context(instance=instance, resources=review_resources))
    replay = review_decision_sensor(build_sensor_context(instance=instance, resources=review_resources))
    assert [r.run_key for r in first.run_requests] == [r.run_key for r in replay.run_requests]  # Dagster drops the copy
    for answer in (first, replay, first):
        assert all(r.success for r in apply_sensor_result(instance, answer, resources, assets=REVIEW))

    made = refunds(db)
    assert [(r["amount"], r["idempotency_key"].split("-v")[0]) for r in made] == [
        (__import__("decimal").Decimal("49.00"), "dispute-CASE-1063")
    ]
    executions = db.fetch_all("SELECT status, attempts FROM executions WHERE case_id = 'CASE-1063'")
    assert [e["status"] for e in executions] == ["succeeded"]
    assert db.fetch_one("SELECT status FROM workflow_states WHERE case_id = 'CASE-1063'")["status"] == "completed"
    assert db.fetch_one("SELECT COUNT(*) AS n FROM audit_log WHERE case_id = 'CASE-1063' AND event = 'executed'")["n"] == 1
