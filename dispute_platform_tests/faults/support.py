"""Helpers for the fault and attack suite: the sensor's answer applied the way the daemon applies
it, worlds built from the bundled one, and a chat-completions server that records and scripts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, SensorResult, build_sensor_context, materialize

from dispute_platform.domain.world import BUNDLED_WORLD
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform_tests.definitions import sqs_dispute_sensor
from dispute_platform_tests.fake_http import FakeServer, Reply
from dispute_platform_tests.integration.harness import INTAKE

TERMINAL = {"completed", "executed", "rejected", "invalid", "blocked"}


def sqs_tick(instance: DagsterInstance, sqs: Any, pg_url: str, cursor: str | None = None):
    """One evaluation of the real sensor function (no daemon): returns its answer."""
    context = build_sensor_context(
        instance=instance, cursor=cursor, resources={"sqs": sqs, "postgres": PostgresResource(database_url=pg_url)}
    )
    return sqs_dispute_sensor(context)


def apply_sensor_result(instance: DagsterInstance, result: Any, resources: dict[str, Any], assets=INTAKE) -> list:
    """Do what the daemon does with a sensor's answer: add the partitions, then launch each run
    request (same tags, same partition key), here in process. Returns the run results."""
    if not isinstance(result, SensorResult):
        return []
    for request in result.dynamic_partitions_requests or []:
        if request.partition_keys:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    runs = []
    for request in result.run_requests or []:
        runs.append(
            materialize(
                assets,
                instance=instance,
                resources=resources,
                partition_key=request.partition_key,
                tags=dict(request.tags),
                raise_on_error=False,
            )
        )
    return runs


def world_data() -> dict:
    return json.loads(BUNDLED_WORLD.read_text())


def write_world(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def status_of(db, case_id: str) -> dict | None:
    return db.fetch_one("SELECT status, status_reason, current_step FROM workflow_states WHERE case_id = %s", (case_id,))


# --- a chat-completions server --------------------------------------------------------------


def completion(
    content: str | None, *, prompt_tokens: int = 900, completion_tokens: int = 120, refusal: str | None = None
) -> dict:
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content, "refusal": refusal}, "logprobs": None,
             "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }  # fmt: skip


def api_error(status: int, message: str) -> dict:
    return {"error": {"message": message, "type": "server_error", "param": None, "code": str(status)}}


@dataclass
class FakeChat:
    """Answers each request with `responder(body, n)` (n: how many requests this case asked
    before, keyed by `key_of(body)`), and records every raw request body."""

    port: int
    responder: Callable[[dict, int], Reply]
    key_of: Callable[[dict], str]
    bodies: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def answer(self, raw: bytes) -> Reply:
        body = json.loads(raw)
        key = self.key_of(body)
        with self.lock:
            self.bodies.append(raw.decode("utf-8"))
            n = self.counts.get(key, 0)
            self.counts[key] = n + 1
        return self.responder(body, n)


@contextmanager
def fake_chat(responder: Callable[[dict, int], Reply], key_of: Callable[[dict], str]) -> Iterator[FakeChat]:
    fake: FakeChat | None = None
    with FakeServer(lambda request: fake.answer(request.body)) as http:
        fake = FakeChat(port=http.port, responder=responder, key_of=key_of)
        yield fake


def case_in_prompt(body: dict) -> str:
    """The case id a prompt is about (the facts block names it: 'case: CASE-1063')."""
    import re

    text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    match = re.search(r"case: ([A-Za-z0-9_.-]+)", text)
    return match.group(1) if match else "?"


def event_for(case_id: str) -> dict:
    """The bundled sample event of a case, or the smallest valid one (only case_id is required)."""
    from dispute_platform_tests.integration.harness import sample_events

    return next((e for e in sample_events() if e["case_id"] == case_id), {"case_id": case_id, "event_id": f"evt-{case_id}"})
