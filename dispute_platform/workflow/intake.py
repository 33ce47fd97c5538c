"""From SQS bodies to stored events: parse, store durably, only then delete.

A bad body never stops the good ones: it becomes a `rejected_events` row with its reason (and a
dead-letter message where a DLQ is configured), and it is deleted from the queue like the rest,
because redelivering it would only fail the same way.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from dispute_platform.domain.models import LONE_SURROGATE as _SURROGATE
from dispute_platform.domain.models import MAX_EVENT_BODY_BYTES, DisputeEvent, strip_control_chars
from dispute_platform.domain.states import INTAKE_MAY_RUN, Status
from dispute_platform.resources.sqs import SQS_BATCH, ReceivedMessage, SQSResource
from dispute_platform.store import repo
from dispute_platform.store.db import Database
from dispute_platform.store.transitions import transition

log = logging.getLogger(__name__)


class _RejectConstant(ValueError):
    pass


def _no_nan(token: str) -> Any:
    raise _RejectConstant(f"{token} is not a number JSON allows")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """An object that names a key twice ({"amount": 10, "amount": 1000}) is ambiguous: JSON
    parsers disagree on which one wins, so the producer must say which it meant."""
    data: dict = {}
    for key, value in pairs:
        if key in data:
            raise _RejectConstant(f"key {strip_control_chars(key)[:60]!r} appears more than once in an object")
        data[key] = value
    return data


def _unpaired_surrogate(data: Any) -> str | None:
    """Where a string (or key) of the parsed body holds a lone surrogate, else None. Iterative:
    the body may be as deep as the JSON parser allowed."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return where or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                path = f"{where}.{key}" if where else str(key)
                if _SURROGATE.search(str(key)):
                    return path
                stack.append((path, item))
        elif isinstance(value, list):
            stack.extend((f"{where}.{i}", item) for i, item in enumerate(value))
    return None


def _describe(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


def parse_body(body: str) -> DisputeEvent | str:
    """The event, or the reason it is not one (a sentence a producer can act on)."""
    parsed = _parse(body)
    return parsed if isinstance(parsed, str) else parsed[0]


def _parse(body: str) -> tuple[DisputeEvent, dict] | str:
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > MAX_EVENT_BODY_BYTES:
        return f"body is {size} bytes; the limit is {MAX_EVENT_BODY_BYTES}"
    if not body.strip():
        return "body is empty"
    try:
        data = json.loads(body, parse_constant=_no_nan, object_pairs_hook=_unique_keys)
    except _RejectConstant as exc:
        return f"not valid JSON: {exc}"
    except (json.JSONDecodeError, RecursionError) as exc:
        return f"not valid JSON: {exc}"
    if not isinstance(data, dict):
        return f"body must be a JSON object, got {type(data).__name__}"
    where = _unpaired_surrogate(data)
    if where is not None:
        return f"{strip_control_chars(_SURROGATE.sub('?', where))[:100]}: text holds an unpaired UTF-16 surrogate escape, which is not valid Unicode"
    if "case_id" not in data:
        return "case_id: required field is missing"
    try:
        return DisputeEvent.model_validate(data), data
    except ValidationError as exc:
        return "; ".join(_describe(e) for e in exc.errors()[:5])


def sanitize(value: Any) -> Any:
    """A JSON value with control characters stripped from every string (Postgres JSONB refuses
    NUL, and the rest only ever confuse a log or a prompt)."""
    if isinstance(value, str):
        return strip_control_chars(value)
    if isinstance(value, dict):
        return {strip_control_chars(str(k)): sanitize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sanitize(v) for v in value]
    return value


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    delete_failures: int = 0
    seconds: float = 0.0
    rejected_reasons: list[str] = field(default_factory=list)


def ingest_batch(db: Database, sqs: SQSResource, messages: list[ReceivedMessage], stats: IngestStats) -> None:
    accepted: list[repo.AcceptedEvent] = []
    rejected: list[repo.RejectedBody] = []
    for message in messages:
        outcome = _parse(message.body)
        if not isinstance(outcome, str):
            event, data = outcome
            accepted.append(
                repo.AcceptedEvent(
                    event=event,
                    body=sanitize(data),
                    message_id=message.message_id,
                    source_queue=sqs.dispute_events_queue_url,
                )
            )
            continue
        dead_lettered = False
        try:
            dead_lettered = sqs.send_dead_letter(message.body, outcome)
        except Exception:  # noqa: BLE001 - the row below keeps the body either way
            log.exception("could not copy rejected message %s to the dead-letter queue", message.message_id)
        rejected.append(
            repo.RejectedBody(
                body=message.body,
                raw=message.body.encode("utf-8", "surrogatepass"),
                reason=outcome,
                message_id=message.message_id,
                source_queue=sqs.dispute_events_queue_url,
                dead_lettered=dead_lettered,
            )
        )

    def store(cur) -> list[str]:
        stored = repo.record_accepted(cur, accepted)
        repo.record_rejected(cur, rejected)
        return stored

    stored = db.transact(store)  # durable before anything is deleted
    stats.received += len(messages)
    stats.stored += len(stored)
    stats.duplicates += len(accepted) - len(stored)
    stats.rejected += len(rejected)
    stats.rejected_reasons += [r.reason for r in rejected]
    stats.delete_failures += len(sqs.delete(messages))


def ingest_from_queue(
    db: Database,
    sqs: SQSResource,
    *,
    max_messages: int,
    budget_seconds: float,
    receivers: int = 1,
    hand_over_at: int | None = None,
) -> IngestStats:
    """Receive, store, delete, until `max_messages`, the time budget, an empty receive, or
    `hand_over_at` new events stored (a run's worth: the tick ends so that its run can start;
    the rest waits for the next tick). Receives never ask for more than the run's worth still
    missing, so a tick hands over exactly that many (duplicates and rejected bodies do not count).

    `receivers` receive calls are kept in flight at once, in threads, while this thread stores
    and deletes what has arrived: a receive's round trip overlaps the storing of the batch before
    it. The rule does not change with the threads: a batch is deleted only after the transaction
    that stored it committed (`ingest_batch`), whichever thread received it. If storing fails,
    the error propagates; messages received but not yet stored are made visible again at once
    (nothing was attempted with them), while the failed batch waits out its visibility timeout
    as before, so an outage is not turned into quick redeliveries."""
    stats = IngestStats()
    started = time.monotonic()
    deadline = started + budget_seconds
    _ = sqs.client  # built here, once: the receive threads share it (boto3 clients are thread-safe)
    asked = 0  # messages asked for by the receives issued so far (less what they did not bring)
    stop = False
    in_flight: dict[Future[list[ReceivedMessage]], int] = {}
    with ThreadPoolExecutor(max_workers=max(1, receivers), thread_name_prefix="sqs-receive") as pool:

        def room() -> int:
            # Never more than a run's worth of new events: one more batch in flight would make
            # 260 where 250 fit one run, and the sensor would cut them into two runs of 130.
            limit = max_messages if hand_over_at is None else min(max_messages, hand_over_at + stats.received - stats.stored)
            return limit - asked

        def launch() -> None:
            nonlocal asked
            while not stop and len(in_flight) < receivers and room() > 0 and time.monotonic() < deadline:
                want = min(SQS_BATCH, room())
                asked += want
                in_flight[pool.submit(sqs.receive_once, want, deadline)] = want

        try:
            launch()
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    want = in_flight.pop(future)
                    batch = future.result()
                    asked -= want - len(batch)
                    if not batch:
                        stop = True  # the queue is empty (or looked so for a whole long poll)
                        continue
                    ingest_batch(db, sqs, batch, stats)
                    if hand_over_at is not None and stats.stored >= hand_over_at:
                        stop = True
                launch()
        except BaseException:
            stop = True
            _release_unattempted(sqs, in_flight)
            raise
    stats.seconds = round(time.monotonic() - started, 3)
    return stats


def _release_unattempted(sqs: SQSResource, in_flight: dict[Future[list[ReceivedMessage]], int]) -> None:
    for future in in_flight:
        try:
            batch = future.result()
            if batch:
                sqs.release(batch)
        except Exception:  # noqa: BLE001 - they reappear after their visibility timeout anyway
            log.warning("could not hand back messages received during a failed tick", exc_info=True)


# --- raw_case: a run takes its stored disputes up ---------------------------------------------------


@dataclass(frozen=True)
class RawCaseOutcome:
    """A dispute as raw_case found it: whether an event is stored for its case id, and what its
    partition shows (the event's figures and the state it was in when the run took it up)."""

    case_id: str
    stored: bool
    metadata: dict[str, Any]


def start_cases(db: Database, keys: Sequence[str], run_id: str | None) -> list[RawCaseOutcome]:
    """Mark each dispute of `keys` with a stored event running (when intake may still run on it),
    with its audit row, in one transaction. One outcome per key, in order."""

    def load(cur: Any) -> tuple[dict[str, dict], dict[str, dict]]:
        events = repo.events_for(cur, keys)
        states = repo.workflow_states(cur, keys)
        for key in events:
            if key in states and states[key]["status"] in INTAKE_MAY_RUN:
                if transition(cur, key, Status.RUNNING, "raw_case", run_id=run_id):
                    repo.audit(cur, key, "raw_case", "materialized", run_id=run_id)
        return events, states

    events, states = db.transact(load)
    outcomes = []
    for key in keys:
        row = events.get(key)
        if row is None:
            outcomes.append(RawCaseOutcome(key, False, {"status": "no event stored for this case id"}))
            continue
        body = row["body"]
        metadata = {
            "event_id": row["event_id"],
            "customer_id": body.get("customer_id") or "-",
            "dispute_type (event)": body.get("dispute_type") or "-",
            "amount (event)": body.get("amount") if isinstance(body.get("amount"), int | float) else None,
            "received_at": row["received_at"].isoformat(),
            "status": states.get(key, {}).get("status", "unknown"),
        }
        outcomes.append(RawCaseOutcome(key, True, metadata))
    return outcomes
