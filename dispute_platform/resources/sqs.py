"""SQS over boto3: the same resource talks to AWS or to a local SQS-compatible endpoint; only
configuration differs (endpoint URL, queue URLs, credentials from the environment)."""

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
        default=120, ge=0, description="How long a received message stays hidden while its batch is stored."
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
        queue_url = queue_url or self.dispute_events_queue_url
        deadline = time.monotonic() + budget_seconds
        received = 0
        while received < max_messages and time.monotonic() < deadline:
            want = min(SQS_BATCH, max_messages - received)
            reply = self.client.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=want,
                WaitTimeSeconds=self.wait_time_seconds,
                VisibilityTimeout=self.visibility_timeout_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
            messages = reply.get("Messages", [])
            if not messages:
                return
            received += len(messages)
            yield [
                ReceivedMessage(
                    message_id=m["MessageId"],
                    receipt_handle=m["ReceiptHandle"],
                    body=m.get("Body", ""),
                    receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                )
                for m in messages
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
