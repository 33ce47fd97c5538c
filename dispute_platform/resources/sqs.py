"""SQS over boto3: the same resource talks to AWS or to a local SQS-compatible endpoint; only
configuration differs (endpoint URL, queue URLs, credentials from the environment).

Receives long-poll (up to 20 s per call, never past the caller's time budget). A received message
stays hidden for `visibility_timeout_seconds`; a batch that takes longer to store extends it with
`extend_visibility`, and `release` hands messages back at once. `ensure_redrive_policy` sets the
dead-letter redrive that moves a message SQS has delivered too often."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from dagster import ConfigurableResource
from pydantic import Field

SQS_BATCH = 10  # SQS's own limit per receive and per batch call
MAX_VISIBILITY_SECONDS = 12 * 60 * 60  # SQS's limit on a message's visibility timeout


@dataclass(frozen=True)
class ReceivedMessage:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int


class SQSResource(ConfigurableResource):
    """Dispute events in, review notifications out."""

    region_name: str = "us-east-1"
    endpoint_url: str | None = Field(default=None, description="Local endpoint; unset for AWS.")
    dispute_events_queue_url: str
    human_review_queue_url: str | None = None
    dead_letter_queue_url: str | None = None
    wait_time_seconds: int = Field(default=1, ge=0, le=20, description="Long-poll wait per receive call.")
    visibility_timeout_seconds: int = Field(
        default=120,
        ge=0,
        le=MAX_VISIBILITY_SECONDS,
        description="How long a received message stays hidden while its batch is stored.",
    )

    @cached_property
    def client(self) -> Any:
        return boto3.client(
            "sqs",
            region_name=self.region_name,
            endpoint_url=self.endpoint_url,
            config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30),
        )

    def receive_batches(
        self, *, max_messages: int, budget_seconds: float, queue_url: str | None = None
    ) -> Iterator[list[ReceivedMessage]]:
        """Batches of up to 10 messages until `max_messages` or the time budget is used, or the
        queue is empty. The caller stores each batch before asking for the next."""
        deadline = time.monotonic() + budget_seconds
        received = 0
        while received < max_messages and time.monotonic() < deadline:
            batch = self.receive_once(min(SQS_BATCH, max_messages - received), deadline, queue_url)
            if not batch:
                return
            received += len(batch)
            yield batch

    def receive_once(self, want: int, deadline: float, queue_url: str | None = None) -> list[ReceivedMessage]:
        """One receive call for up to `want` (<= 10) messages; long-polls, but never past
        `deadline` (time.monotonic()): a sensor tick must end in time. Thread-safe (boto3
        clients are), so several receives may be in flight at once."""
        # Long-poll, but never past the budget.
        wait = max(0, min(self.wait_time_seconds, int(deadline - time.monotonic())))
        reply = self.client.receive_message(
            QueueUrl=queue_url or self.dispute_events_queue_url,
            MaxNumberOfMessages=min(SQS_BATCH, want),
            WaitTimeSeconds=wait,
            VisibilityTimeout=self.visibility_timeout_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            ReceivedMessage(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m.get("Body", ""),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )
            for m in reply.get("Messages", [])
        ]

    def delete(self, messages: Sequence[ReceivedMessage], queue_url: str | None = None) -> list[str]:
        """Batch delete; returns the ids SQS refused (they will be redelivered, which ingest
        tolerates)."""
        queue_url = queue_url or self.dispute_events_queue_url
        failed: list[str] = []
        for start in range(0, len(messages), SQS_BATCH):
            chunk = messages[start : start + SQS_BATCH]
            reply = self.client.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)],
            )
            failed += [chunk[int(f["Id"])].message_id for f in reply.get("Failed", [])]
        return failed

    def extend_visibility(self, messages: Sequence[ReceivedMessage], seconds: int, queue_url: str | None = None) -> list[str]:
        """Keep received messages hidden for `seconds` more from now (0 makes them visible
        again). Returns the ids SQS refused: typically messages whose receipt handle expired,
        which another consumer may already have received."""
        if not 0 <= seconds <= MAX_VISIBILITY_SECONDS:
            raise ValueError(f"visibility timeout must be 0..{MAX_VISIBILITY_SECONDS} seconds, not {seconds}")
        queue_url = queue_url or self.dispute_events_queue_url
        failed: list[str] = []
        for start in range(0, len(messages), SQS_BATCH):
            chunk = messages[start : start + SQS_BATCH]
            reply = self.client.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": seconds} for i, m in enumerate(chunk)
                ],
            )
            failed += [chunk[int(f["Id"])].message_id for f in reply.get("Failed", [])]
        return failed

    def release(self, messages: Sequence[ReceivedMessage], queue_url: str | None = None) -> list[str]:
        """Make messages visible again now (a batch that could not be stored), instead of
        waiting for their visibility timeout to run out."""
        return self.extend_visibility(messages, 0, queue_url)

    def queue_arn(self, queue_url: str | None = None) -> str:
        return queue_arn(self.client, queue_url or self.dispute_events_queue_url)

    def ensure_dead_letter_redrive(self, max_receive_count: int = 5) -> bool:
        """Redrive the events queue to the configured dead-letter queue. Returns True when the
        policy was changed, False when it was already so."""
        if not self.dead_letter_queue_url:
            raise ValueError("no dead-letter queue is configured")
        return ensure_redrive_policy(
            self.client, self.dispute_events_queue_url, self.queue_arn(self.dead_letter_queue_url), max_receive_count
        )

    def send(self, body: str | dict, queue_url: str | None = None, attributes: dict[str, str] | None = None) -> str:
        queue_url = queue_url or self.dispute_events_queue_url
        text = body if isinstance(body, str) else json.dumps(body, default=str)
        kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": text}
        if attributes:
            kwargs["MessageAttributes"] = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        return self.client.send_message(**kwargs)["MessageId"]

    def send_many(self, bodies: Sequence[str | dict], queue_url: str | None = None) -> int:
        queue_url = queue_url or self.dispute_events_queue_url
        sent = 0
        for start in range(0, len(bodies), SQS_BATCH):
            chunk = bodies[start : start + SQS_BATCH]
            entries = [
                {"Id": str(i), "MessageBody": b if isinstance(b, str) else json.dumps(b, default=str)}
                for i, b in enumerate(chunk)
            ]
            reply = self.client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            if reply.get("Failed"):
                raise RuntimeError(f"SQS refused {len(reply['Failed'])} messages: {reply['Failed'][0]}")
            sent += len(entries)
        return sent

    def send_dead_letter(self, body: str, reason: str) -> bool:
        if not self.dead_letter_queue_url:
            return False
        # SQS bodies must be valid Unicode without most control characters; keep what we can.
        self.send(body.encode("utf-8", "replace").decode("utf-8"), self.dead_letter_queue_url, {"reason": reason[:250]})
        return True

    def notify_review(self, payload: dict) -> str | None:
        if not self.human_review_queue_url:
            return None
        return self.send(payload, self.human_review_queue_url)

    def approximate_depth(self, queue_url: str | None = None) -> int:
        attrs = self.client.get_queue_attributes(
            QueueUrl=queue_url or self.dispute_events_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs.get("ApproximateNumberOfMessages", 0)) + int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))


def queue_arn(client: Any, queue_url: str) -> str:
    return client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def ensure_redrive_policy(client: Any, queue_url: str, dlq_arn: str, max_receive_count: int) -> bool:
    """Make SQS move a message to `dlq_arn` after `max_receive_count` receives without a delete.
    Idempotent: returns False (and changes nothing) when the queue already has this policy."""
    if not 1 <= max_receive_count <= 1000:
        raise ValueError(f"max_receive_count must be 1..1000, not {max_receive_count}")
    attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
    current = json.loads(attributes["RedrivePolicy"]) if attributes.get("RedrivePolicy") else {}
    if current.get("deadLetterTargetArn") == dlq_arn and int(current.get("maxReceiveCount", 0)) == max_receive_count:
        return False
    policy = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
    client.set_queue_attributes(QueueUrl=queue_url, Attributes={"RedrivePolicy": json.dumps(policy)})
    return True
