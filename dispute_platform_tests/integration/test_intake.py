"""Issue 2: the SQS sensor and the intake assets against real PostgreSQL and the local SQS endpoint."""

from __future__ import annotations

import json

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context

from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.sensors import RANGE_END, RANGE_START
from dispute_platform_tests.conftest import drain
from dispute_platform_tests.definitions import sqs_dispute_sensor
from dispute_platform_tests.integration.harness import (
    build_test_resources,
    metadata_for,
    run_intake,
    sample_event,
    sample_events,
)

pytestmark = pytest.mark.integration

MALFORMED = {
    "not JSON": "this is not json {",
    "missing case_id": json.dumps({"customer_id": "CUST-00001", "amount": 10}),
    "case id with spaces": json.dumps({"case_id": "CASE 1001"}),
    "case id of 500 characters": json.dumps({"case_id": "C" * 500}),
    "amount as text": json.dumps({"case_id": "CASE-1063", "amount": "fifty dollars"}),
    "200 KB body": json.dumps({"case_id": "CASE-1063", "description": "x" * 200_000}),
}


def _tick(instance, sqs, pg_url, cursor=None):
    context = build_sensor_context(
        instance=instance, cursor=cursor, resources={"sqs": sqs, "postgres": PostgresResource(database_url=pg_url)}
    )
    return sqs_dispute_sensor(context), context


def test_sensor_stores_each_dispute_once_and_rejects_bad_bodies_with_reasons(db, sqs, pg_url):
    good = sample_events()[:12]
    sqs.send_many(good + good[:3] + list(MALFORMED.values()))  # 3 duplicates of good events
    instance = DagsterInstance.ephemeral()

    result, context = _tick(instance, sqs, pg_url)

    assert isinstance(result, SensorResult)
    added = result.dynamic_partitions_requests[0].partition_keys
    assert sorted(added) == sorted(e["case_id"] for e in good)
    stored = db.fetch_all("SELECT case_id, COUNT(*) AS n FROM dispute_events GROUP BY case_id")
    assert {r["case_id"]: r["n"] for r in stored} == {e["case_id"]: 1 for e in good}
    rejected = db.fetch_all("SELECT reason, body_bytes, dead_lettered FROM rejected_events ORDER BY id")
    assert len(rejected) == len(MALFORMED)
    reasons = " | ".join(r["reason"] for r in rejected)
    for fragment in ("not valid JSON", "case_id: required", "case_id", "amount must be a JSON number", "the limit is 65536"):
        assert fragment in reasons, reasons
    assert all(r["dead_lettered"] for r in rejected)
    assert max(r["body_bytes"] for r in rejected) > 200_000
    # Nothing left on the queue; the bad bodies went to the dead-letter queue as well.
    assert drain(sqs, sqs.dispute_events_queue_url) == []
    assert len(drain(sqs, sqs.dead_letter_queue_url)) == len(MALFORMED)
    # One run over the whole batch, keyed on its first and last event. Receives run side by side,
    # so which batch was stored first (and took the lowest event ids) varies: read the ids back.
    first_ids = db.fetch_all("SELECT MIN(id) AS id FROM dispute_events GROUP BY case_id ORDER BY 1")
    first, last = first_ids[0]["id"], first_ids[-1]["id"]
    [request] = result.run_requests
    assert request.run_key == f"intake:{first}-{last}"
    assert request.tags["dagster/asset_partition_range_start"] == added[0]
    assert request.tags["dagster/asset_partition_range_end"] == added[-1]
    assert result.cursor == str(last)


def test_redelivery_after_the_cursor_moved_starts_nothing(db, sqs, pg_url):
    events = sample_events()[:3]
    sqs.send_many(events)
    instance = DagsterInstance.ephemeral()
    first, _ = _tick(instance, sqs, pg_url)
    instance.add_dynamic_partitions("disputes", first.dynamic_partitions_requests[0].partition_keys)

    sqs.send_many(events)  # SQS redelivers everything
    second, _ = _tick(instance, sqs, pg_url, cursor=first.cursor)

    assert not isinstance(second, SensorResult)  # a SkipReason: no new disputes
    assert db.fetch_one("SELECT COUNT(*) AS n FROM dispute_events")["n"] == 3


def test_a_crashed_tick_is_recovered_from_postgres_not_from_the_messages(db, sqs, pg_url):
    """Events stored (and messages deleted) by a tick whose result was lost still start runs."""
    sqs.send_many(sample_events()[:4])
    instance = DagsterInstance.ephemeral()
    lost, _ = _tick(instance, sqs, pg_url)  # pretend the daemon never saw this result
    assert drain(sqs, sqs.dispute_events_queue_url) == []

    again, _ = _tick(instance, sqs, pg_url, cursor=None)

    assert sorted(again.dynamic_partitions_requests[0].partition_keys) == sorted(
        lost.dynamic_partitions_requests[0].partition_keys
    )
    assert again.run_requests[0].run_key == lost.run_requests[0].run_key  # Dagster drops the duplicate request


def test_raw_case_and_enriched_context_for_valid_and_invalid_disputes(db, sqs, pg_url, tmp_path):
    valid, outside_window, mismatch = "CASE-1063", "CASE-1060", "CASE-1015"
    sqs.send_many([sample_event(valid), sample_event(outside_window), sample_event(mismatch)])
    instance = DagsterInstance.ephemeral()
    _tick(instance, sqs, pg_url)
    resources = build_test_resources(pg_url, sqs, tmp_path)
    from dagster import materialize

    from dispute_platform_tests.definitions import enriched_context, raw_case

    keys = [valid, outside_window, mismatch]
    instance.add_dynamic_partitions("disputes", keys)
    result = materialize(
        [raw_case, enriched_context],
        instance=instance,
        resources=resources,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )
    assert result.success

    states = {r["case_id"]: r for r in db.fetch_all("SELECT * FROM workflow_states")}
    assert states[valid]["status"] == "enriched" and states[valid]["current_step"] == "enriched_context"
    assert states[valid]["segment"] == "smb" and states[valid]["crm_data"]["case"]["case_id"] == valid
    assert len(states[valid]["payment_data"]["relevant_charge_ids"]) <= 5
    assert states[outside_window]["status"] == "invalid"
    assert "window is 120 days" in states[outside_window]["status_reason"]
    assert states[mismatch]["status"] == "invalid" and "belongs to" in states[mismatch]["status_reason"]

    meta = metadata_for(result, "enriched_context", valid)
    assert meta["valid"] is True and meta["segment"] == "smb" and meta["refundable_amount"] == 49.0
    assert metadata_for(result, "enriched_context", outside_window)["valid"] is False
    assert metadata_for(result, "raw_case", valid)["event_id"] == sample_event(valid)["event_id"]


def test_invalid_disputes_never_reach_a_model(db, sqs, pg_url, tmp_path):
    calls: list[str] = []

    class CountingProposer:
        name, cacheable = "counting", False

        def propose(self, context, *args):
            calls.append(context.case_id)
            raise AssertionError("an invalid dispute reached the proposer")

    sqs.send_many([sample_event("CASE-1054"), sample_event("CASE-1048")])  # unknown type, amount above billed
    instance = DagsterInstance.ephemeral()
    _tick(instance, sqs, pg_url)
    resources = build_test_resources(pg_url, sqs, tmp_path, proposer=CountingProposer())
    result = run_intake(instance, resources, ["CASE-1054", "CASE-1048"])

    assert result.success, result.all_events
    assert calls == []
    assert {r["status"] for r in db.fetch_all("SELECT status FROM workflow_states")} == {"invalid"}
    assert db.fetch_one("SELECT COUNT(*) AS n FROM proposals")["n"] == 0


def _run_sizes(result, keys: list[str]) -> list[int]:
    """How many disputes each requested run carries (a range over the partitions added in order)."""
    where = {key: i for i, key in enumerate(keys)}
    return [where[r.tags[RANGE_END]] - where[r.tags[RANGE_START]] + 1 for r in result.run_requests]


def test_a_tick_starts_at_most_ten_runs_worth_of_disputes_and_the_next_tick_the_rest(db, sqs, pg_url, monkeypatch):
    from dispute_platform.settings import get_settings

    monkeypatch.setenv("DISPUTES_PER_RUN", "2")  # so the cap per tick is 2 x 10 = 20 disputes
    get_settings.cache_clear()
    try:
        events = [{"case_id": f"TICK-{i:03d}", "event_id": f"evt-TICK-{i:03d}"} for i in range(25)]
        sqs.send_many(events)
        instance = DagsterInstance.ephemeral()

        first, _ = _tick(instance, sqs, pg_url)
        started = list(first.dynamic_partitions_requests[0].partition_keys)
        assert len(started) == 20 and _run_sizes(first, started) == [2] * 10
        assert db.fetch_one("SELECT COUNT(*) AS n FROM dispute_events")["n"] == 25  # all stored, 20 started
        instance.add_dynamic_partitions("disputes", started)

        second, _ = _tick(instance, sqs, pg_url, cursor=first.cursor)
        rest = list(second.dynamic_partitions_requests[0].partition_keys)
        assert sorted(started + rest) == [e["case_id"] for e in events]
        assert _run_sizes(second, rest) == [2, 2, 1]
        instance.add_dynamic_partitions("disputes", rest)

        third, _ = _tick(instance, sqs, pg_url, cursor=second.cursor)
        assert not isinstance(third, SensorResult)  # nothing left to start
    finally:
        get_settings.cache_clear()
