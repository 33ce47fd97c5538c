"""SQSResource against moto's server (a real SQS HTTP endpoint): long polling, visibility
extension and release, batch delete, and the dead-letter redrive policy."""

from __future__ import annotations

import json
import threading
import time
import uuid

import boto3
import pytest

from dispute_platform.resources.sqs import SQSResource, ensure_redrive_policy, queue_arn

pytestmark = pytest.mark.integration


def test_long_poll_waits_for_a_message_that_arrives_during_the_wait(sqs_endpoint: str, queues: dict[str, str]) -> None:
    resource = SQSResource(endpoint_url=sqs_endpoint, dispute_events_queue_url=queues["events"], wait_time_seconds=3)
    sender = threading.Timer(0.3, lambda: resource.send({"case_id": "CASE-1"}))
    sender.start()
    started = time.monotonic()
    batches = list(resource.receive_batches(max_messages=1, budget_seconds=5))
    sender.join()
    assert [json.loads(m.body) for m in batches[0]] == [{"case_id": "CASE-1"}]
    assert time.monotonic() - started < 2.5  # returned when the message came, not after the full wait


def test_long_poll_never_outlasts_the_budget(sqs_endpoint: str, queues: dict[str, str]) -> None:
    resource = SQSResource(endpoint_url=sqs_endpoint, dispute_events_queue_url=queues["events"], wait_time_seconds=20)
    started = time.monotonic()
    assert list(resource.receive_batches(max_messages=10, budget_seconds=1.5)) == []
    assert time.monotonic() - started < 3


def test_extend_visibility_keeps_a_slow_batch_hidden_and_release_returns_it(sqs_endpoint: str, queues: dict[str, str]) -> None:
    resource = SQSResource(
        endpoint_url=sqs_endpoint, dispute_events_queue_url=queues["events"], wait_time_seconds=0, visibility_timeout_seconds=1
    )
    resource.send_many([{"case_id": f"CASE-{i}"} for i in range(12)])
    received = [m for batch in resource.receive_batches(max_messages=12, budget_seconds=5) for m in batch]
    assert len(received) == 12

    assert resource.extend_visibility(received, 60) == []  # two batch calls (10 + 2)
    time.sleep(1.3)  # past the original 1 s visibility timeout
    assert list(resource.receive_batches(max_messages=12, budget_seconds=1)) == []

    assert resource.release(received[:3]) == []
    again = [m for batch in resource.receive_batches(max_messages=12, budget_seconds=2) for m in batch]
    assert sorted(m.message_id for m in again) == sorted(m.message_id for m in received[:3])
    assert all(m.receive_count == 2 for m in again)
    assert resource.delete(again) == []
    assert resource.approximate_depth() == 9


def test_extend_visibility_rejects_out_of_range_timeouts(sqs: SQSResource) -> None:
    with pytest.raises(ValueError):
        sqs.extend_visibility([], 12 * 60 * 60 + 1)


def test_ensure_redrive_policy_is_idempotent_and_moves_poison_messages(sqs_endpoint: str) -> None:
    client = boto3.client("sqs", endpoint_url=sqs_endpoint, region_name="us-east-1")
    suffix = uuid.uuid4().hex[:8]
    dlq = client.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    events = client.create_queue(QueueName=f"events-{suffix}")["QueueUrl"]
    dlq_arn = queue_arn(client, dlq)

    assert ensure_redrive_policy(client, events, dlq_arn, 2) is True
    assert ensure_redrive_policy(client, events, dlq_arn, 2) is False
    policy = json.loads(
        client.get_queue_attributes(QueueUrl=events, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
    )
    assert policy["deadLetterTargetArn"] == dlq_arn and int(policy["maxReceiveCount"]) == 2

    resource = SQSResource(
        endpoint_url=sqs_endpoint, dispute_events_queue_url=events, dead_letter_queue_url=dlq, wait_time_seconds=0
    )
    assert resource.ensure_dead_letter_redrive(2) is False  # same policy, through the resource
    resource.send({"case_id": "POISON"})
    for _ in range(2):  # received twice, never deleted
        (batch,) = resource.receive_batches(max_messages=1, budget_seconds=2)
        resource.release(batch)
    assert list(resource.receive_batches(max_messages=1, budget_seconds=1)) == []
    moved = [m.body for batch in resource.receive_batches(max_messages=1, budget_seconds=2, queue_url=dlq) for m in batch]
    assert moved == ['{"case_id": "POISON"}']
    with pytest.raises(ValueError):
        ensure_redrive_policy(client, events, dlq_arn, 0)
