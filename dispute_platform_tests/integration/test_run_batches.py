"""A run acts on exactly the disputes it was requested for; a retried step redoes only what is
unfinished; decisions of a tick share runs. Real Postgres, real local SQS, real Dagster instance,
the real assets and sensors."""

from __future__ import annotations

import threading
import time

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context, materialize

from dispute_platform import run_keys
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.providers import SandboxCRM
from dispute_platform.sensors import review_batches
from dispute_platform.settings import get_settings
from dispute_platform.store.db import Database
from dispute_platform_tests.definitions import enriched_context, raw_case, review_decision_sensor
from dispute_platform_tests.faults.support import apply_sensor_result, sqs_tick
from dispute_platform_tests.integration.harness import (
    INTAKE,
    RANGE_END,
    RANGE_START,
    REVIEW,
    build_test_resources,
    decide,
    metadata_for,
    run_intake,
    sample_event,
    store_events,
)
from dispute_platform_tests.money.support import CREDIT_125, ESCALATED, REFUND_49, REFUND_490, ledger, status

OTHER = "CASE-1015"  # a dispute another writer adds to the partition set while the tick's keys go in


def audit_events(db, case_id: str) -> list[str]:
    return [r["event"] for r in db.fetch_all("SELECT event FROM audit_log WHERE case_id = %s ORDER BY id", (case_id,))]


def test_a_range_run_leaves_a_key_another_writer_put_inside_it_untouched(db, sqs, pg_url, tmp_path, chroma_dir):
    cases = [REFUND_49, CREDIT_125, REFUND_490]
    sqs.send_many([sample_event(c) for c in cases])
    instance = DagsterInstance.ephemeral()
    answer = sqs_tick(instance, sqs, pg_url)
    assert isinstance(answer, SensorResult)
    [request] = answer.run_requests
    added = list(answer.dynamic_partitions_requests[0].partition_keys)
    # The daemon adds the tick's keys; between the first and the others, another writer adds one.
    instance.add_dynamic_partitions("disputes", added[:1])
    store_events(db, [sample_event(OTHER)])
    instance.add_dynamic_partitions("disputes", [OTHER])
    instance.add_dynamic_partitions("disputes", added[1:])
    start, end = request.tags[RANGE_START], request.tags[RANGE_END]
    assert instance.get_dynamic_partitions("disputes") == [added[0], OTHER, *added[1:]]
    assert (start, end) == (added[0], added[-1])  # so OTHER is inside the run's range

    listings = run_keys._LISTINGS["count"]
    resources = build_test_resources(pg_url, sqs, tmp_path)
    listed = []
    real_listing = instance.get_dynamic_partitions
    instance.get_dynamic_partitions = lambda *a, **k: listed.append(1) or real_listing(*a, **k)  # type: ignore[method-assign]
    result = materialize(INTAKE, instance=instance, resources=resources, tags=dict(request.tags), raise_on_error=False)
    instance.get_dynamic_partitions = real_listing  # type: ignore[method-assign]

    assert result.success
    assert {c: status(db, c) for c in cases} == {c: "pending_review" for c in cases}
    assert status(db, OTHER) == "received"  # untouched: not enriched, no proposal
    assert audit_events(db, OTHER) == ["event_received"]
    assert db.fetch_all("SELECT 1 FROM proposals WHERE case_id = %s", (OTHER,)) == []
    for asset in ("raw_case", "enriched_context"):
        assert metadata_for(result, asset, OTHER)["status"] == run_keys.NOT_THIS_RUNS
    # ai_proposal yields one event per dispute it acted on (checks.py): none at all for OTHER
    with pytest.raises(AssertionError, match="no materialization"):
        metadata_for(result, "ai_proposal", OTHER)
    assert metadata_for(result, "ai_proposal", REFUND_49)["status"] == "pending_review"
    # The run's keys were listed once for its three assets, not once per asset, and per-dispute
    # metadata does not list them again (Dagster's add_asset_metadata would, once per call).
    assert run_keys._LISTINGS["count"] - listings == 1
    print("partition-set listings in the run:", len(listed))
    assert len(listed) <= 3 * 7, len(listed)  # Dagster's own, per step; not per dispute


def test_a_run_launched_by_a_person_acts_on_every_key_it_names(db, sqs, pg_url, tmp_path, chroma_dir):
    cases = [REFUND_49, CREDIT_125]
    store_events(db, [sample_event(c) for c in cases])
    resources = build_test_resources(pg_url, sqs, tmp_path)
    assert run_intake(DagsterInstance.ephemeral(), resources, cases).success  # range tags, no batch tag
    assert {c: status(db, c) for c in cases} == {c: "pending_review" for c in cases}


class FlakyCRM(SandboxCRM):
    """The sandbox CRM, failing the first call for one case (as the pool did: "connection pool
    exhausted"), and counting calls per case."""

    def fetch_case(self, case_id: str):
        with _LOCK:
            CALLS[case_id] = CALLS.get(case_id, 0) + 1
            first = CALLS[case_id] == 1
        if case_id == FLAKY and first:
            raise ConnectionError("PoolError: connection pool exhausted")
        return super().fetch_case(case_id)


CALLS: dict[str, int] = {}
_LOCK = threading.Lock()
FLAKY = CREDIT_125


def test_a_retried_enrichment_redoes_only_the_dispute_that_failed(db, sqs, pg_url, tmp_path):
    cases = [REFUND_49, CREDIT_125, REFUND_490, OTHER]
    CALLS.clear()
    store_events(db, [sample_event(c) for c in cases])
    resources = build_test_resources(pg_url, sqs, tmp_path)
    resources["crm"] = FlakyCRM(sandbox_data=None, postgres=resources["postgres"])
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("disputes", cases)
    tags = {RANGE_START: cases[0], RANGE_END: cases[-1]}

    result = materialize([raw_case, enriched_context], instance=instance, resources=resources, tags=tags, raise_on_error=False)

    assert result.success  # the step failed once and its retry succeeded
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 1
    assert CALLS == {REFUND_49: 1, CREDIT_125: 2, REFUND_490: 1, OTHER: 1}  # only the failed one again
    for case in cases:
        steps = [e for e in audit_events(db, case) if e in ("valid", "invalid")]
        assert len(steps) == 1, (case, audit_events(db, case))
    assert audit_events(db, FLAKY)[-2:] == ["fetch_failed", "valid"]

    # The step run again for the same keys (a re-execution): nothing is redone, no audit row doubled.
    before = db.fetch_one("SELECT COUNT(*) AS n FROM audit_log")["n"]
    again = materialize([enriched_context], instance=instance, resources=resources, tags=tags, raise_on_error=False)
    assert again.success
    assert db.fetch_one("SELECT COUNT(*) AS n FROM audit_log")["n"] == before
    assert CALLS == {REFUND_49: 1, CREDIT_125: 2, REFUND_490: 1, OTHER: 1}
    assert metadata_for(again, "enriched_context", REFUND_49)["status"] == "not enriched again: dispute is enriched"


def test_the_pool_makes_a_thread_wait_for_a_connection_instead_of_failing(pg_url):
    database = Database(pg_url, maxconn=2)
    errors: list[Exception] = []

    def hold() -> None:
        try:
            database.transact(lambda cur: cur.execute("SELECT pg_sleep(0.2)"))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=hold) for _ in range(8)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert time.perf_counter() - started >= 0.2 * 8 / 2 * 0.9  # two at a time: they waited their turn
    database.close()


def review_tick(instance, pg_url, sqs, resources):
    context = build_sensor_context(
        instance=instance,
        resources={"postgres": PostgresResource(database_url=pg_url), "sqs": sqs, "email": resources["email"]},
    )
    return review_decision_sensor(context)


def test_review_batches_join_decisions_near_each_other_in_the_partition_set():
    decided = [{"case_id": c, "decision_id": i} for i, c in enumerate("ABDGHZ")]
    positions = {c: i for i, c in enumerate("ABCDEFGH")}  # Z is not in the set
    cut = lambda **kw: [[d["case_id"] for d in b] for b in review_batches(decided, positions, **kw)]  # noqa: E731
    assert cut(most=10) == [["A", "B"], ["D"], ["G", "H"], ["Z"]]
    assert cut(most=10, max_gap=1) == [["A", "B", "D"], ["G", "H"], ["Z"]]
    assert cut(most=10, max_gap=2) == [["A", "B", "D", "G", "H"], ["Z"]]
    assert cut(most=2, max_gap=2) == [["A", "B"], ["D", "G"], ["H"], ["Z"]]


def test_decisions_of_a_tick_share_runs_and_each_is_executed_once(db, sqs, pg_url, tmp_path, chroma_dir, monkeypatch):
    monkeypatch.setenv("REVIEW_RANGE_MAX_GAP", "0")
    get_settings.cache_clear()
    order = [REFUND_49, CREDIT_125, ESCALATED, REFUND_490]  # partition order
    store_events(db, [sample_event(c) for c in order])
    resources = build_test_resources(pg_url, sqs, tmp_path)
    instance = DagsterInstance.ephemeral()
    assert run_intake(instance, resources, order).success
    for case in (REFUND_49, CREDIT_125, REFUND_490):
        decide(db, case, "approved", "alice")

    tick = review_tick(instance, pg_url, sqs, resources)
    again = review_tick(instance, pg_url, sqs, resources)

    # The two neighbours share a range run; REFUND_490 (ESCALATED, undecided, lies between) has its own.
    by_key = {r.run_key: r for r in tick.run_requests}
    assert len(by_key) == 2
    ranged = next(r for r in tick.run_requests if r.partition_key is None)
    assert (ranged.tags[RANGE_START], ranged.tags[RANGE_END]) == (REFUND_49, CREDIT_125)
    assert [r.partition_key for r in tick.run_requests if r.partition_key] == [REFUND_490]
    assert sorted(r.run_key for r in again.run_requests) == sorted(by_key)  # Dagster drops the repeats

    runs = apply_sensor_result(instance, tick, resources, assets=REVIEW)
    assert all(r.success for r in runs)
    assert {c: status(db, c) for c in order} == {REFUND_49: "completed", CREDIT_125: "completed",
                                                 ESCALATED: "pending_review", REFUND_490: "completed"}  # fmt: skip
    assert sorted(r["case_id"] for r in ledger(db)) == sorted([REFUND_49, CREDIT_125, REFUND_490])
    # Run again (a repeated request, a retry): nothing moves twice, nothing is remembered twice.
    assert all(r.success for r in apply_sensor_result(instance, tick, resources, assets=REVIEW))
    assert len(ledger(db)) == 3
    remembered = db.fetch_all("SELECT case_id, COUNT(*) AS n FROM audit_log WHERE event = 'remembered' GROUP BY case_id")
    assert {r["case_id"]: r["n"] for r in remembered} == {REFUND_49: 1, CREDIT_125: 1, REFUND_490: 1}
    # Nothing left for the sensor to start (the same batches, already run).
    later = review_tick(instance, pg_url, sqs, resources)
    assert not isinstance(later, SensorResult) or not later.run_requests
    get_settings.cache_clear()


def test_a_review_range_leaves_the_undecided_dispute_inside_it_untouched(db, sqs, pg_url, tmp_path, chroma_dir, monkeypatch):
    monkeypatch.setenv("REVIEW_RANGE_MAX_GAP", "1")
    get_settings.cache_clear()
    order = [REFUND_49, ESCALATED, CREDIT_125]  # partition order; ESCALATED stays undecided
    store_events(db, [sample_event(c) for c in order])
    resources = build_test_resources(pg_url, sqs, tmp_path)
    instance = DagsterInstance.ephemeral()
    assert run_intake(instance, resources, order).success
    for case in (REFUND_49, CREDIT_125):
        decide(db, case, "approved", "alice")

    [request] = review_tick(instance, pg_url, sqs, resources).run_requests
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (REFUND_49, CREDIT_125)
    [run] = apply_sensor_result(instance, SensorResult(run_requests=[request]), resources, assets=REVIEW)

    assert run.success
    assert {c: status(db, c) for c in order} == {REFUND_49: "completed", ESCALATED: "pending_review", CREDIT_125: "completed"}
    for asset in ("review_decision", "executed_resolution", "resolution_embedding"):
        assert metadata_for(run, asset, ESCALATED)["status"] == run_keys.NOT_THIS_RUNS
    assert "review_decision" not in [r["step"] for r in db.fetch_all(
        "SELECT step FROM audit_log WHERE case_id = %s", (ESCALATED,))]  # fmt: skip
    assert sorted(r["case_id"] for r in ledger(db)) == sorted([REFUND_49, CREDIT_125])
    get_settings.cache_clear()


def test_two_disputes_on_one_charge_executed_side_by_side_in_one_run_cannot_together_exceed_it(
    db, sqs, pg_url, tmp_path, chroma_dir, monkeypatch
):
    monkeypatch.setenv("REVIEW_RANGE_MAX_GAP", "1")
    monkeypatch.setenv("EXECUTIONS_IN_FLIGHT", "4")  # the run's executions go side by side
    get_settings.cache_clear()
    order = [REFUND_49, CREDIT_125, ESCALATED, REFUND_490]  # partition order; ESCALATED stays undecided
    store_events(db, [sample_event(c) for c in order])
    resources = build_test_resources(pg_url, sqs, tmp_path)
    instance = DagsterInstance.ephemeral()
    assert run_intake(instance, resources, order).success
    owner = db.fetch_one("SELECT customer_id, validation FROM workflow_states WHERE case_id = %s", (REFUND_490,))
    # The credit dispute becomes a second case of the same customer about the same 490.00 charge.
    db.transact(lambda cur: cur.execute(
        "UPDATE workflow_states SET customer_id = %s, "
        "validation = validation || jsonb_build_object('disputed_charge_id', %s::text) WHERE case_id = %s",
        (owner["customer_id"], owner["validation"]["disputed_charge_id"], CREDIT_125)))  # fmt: skip
    for case in (CREDIT_125, REFUND_490):
        decide(db, case, "approved", "alice")

    [request] = review_tick(instance, pg_url, sqs, resources).run_requests
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == (CREDIT_125, REFUND_490)
    [run] = apply_sensor_result(instance, SensorResult(run_requests=[request]), resources, assets=REVIEW)

    # Whichever thread got the charge first moved its money; the other was refused (125 + 490 is
    # more than the 490 charge), and the refusal does not fail the batch.
    assert run.success
    [moved] = ledger(db)
    refused = REFUND_490 if moved["case_id"] == CREDIT_125 else CREDIT_125
    assert status(db, moved["case_id"]) == "completed" and status(db, refused) == "execution_failed"
    assert db.fetch_one("SELECT status FROM executions WHERE case_id = %s", (refused,))["status"] == "failed"
    assert "still" in metadata_for(run, "executed_resolution", refused)["error"]
    get_settings.cache_clear()
