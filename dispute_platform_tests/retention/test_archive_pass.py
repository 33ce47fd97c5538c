"""The archive pass against real PostgreSQL and a Dagster instance on dagster-postgres storage:
settled disputes leave the partition set, runs holding only archived disputes go with their
events, nothing in flight is touched, and no platform row is ever deleted."""

from __future__ import annotations

import threading
import uuid

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRun, DagsterRunStatus, materialize

from dispute_platform.domain.retention import RetentionPolicy
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.settings import get_settings
from dispute_platform.store import retention as store
from dispute_platform.store.transitions import lock_case
from dispute_platform.workflow.retention import run_archive_pass
from dispute_platform_tests.conftest import PLATFORM_TABLES
from dispute_platform_tests.definitions import asset
from dispute_platform_tests.money.support import wait_for_lock_waiter
from dispute_platform_tests.retention.conftest import decide, failed_run, intake_run, open_disputes, review_run, settle

pytestmark = pytest.mark.integration

POLICY = RetentionPolicy(days=30, max_settled=100)


def row_counts(db) -> dict[str, int]:
    return {t: db.fetch_one(f"SELECT COUNT(*) AS n FROM {t}")["n"] for t in PLATFORM_TABLES}


def event_rows(instance, run_id: str) -> int:
    return len(instance.get_records_for_run(run_id).records)


def started_run(instance, tags: dict[str, str]) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id=run_id, status=DagsterRunStatus.STARTED, tags=tags))
    return run_id


def test_pass_archives_settled_disputes_and_their_runs_keeps_in_flight_and_every_row(db, pg_instance):
    a, b, c, d, e, f, g, h = open_disputes(db, 8)
    pg_instance.add_dynamic_partitions("disputes", [a, b, c, d, e, f, g, h])
    old_intake = intake_run(pg_instance, [a, b, c])  # all three will be archived
    mixed_intake = intake_run(pg_instance, [d, e])  # d settles, e is still waiting for review
    review_a = review_run(pg_instance, a)
    for case in (a, b, c):
        settle(db, case, "completed", days_ago=40)
    settle(db, d, "executed", days_ago=45)
    settle(db, e, "pending_review", days_ago=100)  # old, but in flight
    settle(db, f, "rejected", days_ago=40)
    decide(db, f)  # rejected, and its review run has not happened: in flight
    settle(db, g, "invalid", days_ago=40)
    started_run(pg_instance, {"dagster/partition": g})  # a run is working on g right now
    settle(db, h, "completed", days_ago=1)  # settled recently: inside the window
    before = row_counts(db)
    a_rows = event_rows(pg_instance, old_intake)
    assert a_rows > 0 and event_rows(pg_instance, review_a) > 0

    report = run_archive_pass(db, pg_instance, POLICY, batch_size=2, trigger="test")

    assert sorted(report.selected_keys) == sorted([a, b, c, d])
    assert sorted(pg_instance.get_dynamic_partitions("disputes")) == sorted([e, f, g, h])
    # Runs whose disputes are all archived are gone with their events; a run that also holds a
    # dispute in the set stays whole.
    assert pg_instance.get_run_record_by_id(old_intake) is None
    assert pg_instance.get_run_record_by_id(review_a) is None
    assert pg_instance.get_run_record_by_id(mixed_intake) is not None
    assert event_rows(pg_instance, old_intake) == 0
    assert pg_instance.get_materialized_partitions(AssetKey("raw_case")) == {d, e}
    figures = report.figures
    assert (figures.selected, figures.archived, figures.keys_deleted, figures.runs_deleted) == (4, 4, 4, 2)
    assert figures.event_rows_removed >= a_rows and figures.partitions_after == 4 and report.batches == 2
    # Postgres keeps every row; archiving only adds audit rows and the pass record.
    after = row_counts(db)
    assert after["audit_log"] == before["audit_log"] + 4
    assert {k: v for k, v in after.items() if k not in ("audit_log", "archive_passes")} == {
        k: v for k, v in before.items() if k not in ("audit_log", "archive_passes")
    }
    archived = {r["case_id"] for r in db.fetch_all("SELECT case_id FROM workflow_states WHERE archived_at IS NOT NULL")}
    assert archived == {a, b, c, d}
    [recorded] = db.fetch_all("SELECT * FROM archive_passes")
    assert recorded["finished_at"] is not None and recorded["archived"] == 4 and recorded["runs_deleted"] == 2
    assert recorded["partitions_before"] == 8 and recorded["partitions_after"] == 4 and recorded["error"] is None

    # A second pass finds nothing more to do.
    again = run_archive_pass(db, pg_instance, POLICY, trigger="test")
    assert again.figures.selected == 0 and sorted(pg_instance.get_dynamic_partitions("disputes")) == sorted([e, f, g, h])


def test_a_failed_run_that_only_planned_the_dispute_is_pruned_with_it(db, pg_instance):
    [case] = open_disputes(db, 1)
    pg_instance.add_dynamic_partitions("disputes", [case])
    failed = failed_run(pg_instance, case)
    assert event_rows(pg_instance, failed) > 0 and not pg_instance.get_materialized_partitions(AssetKey("raw_case"))
    settle(db, case, "invalid", days_ago=40)

    report = run_archive_pass(db, pg_instance, POLICY)

    assert report.figures.runs_deleted == 1 and pg_instance.get_run_record_by_id(failed) is None
    assert event_rows(pg_instance, failed) == 0


def test_the_count_bound_archives_the_oldest_settled_first_and_a_dry_run_changes_nothing(db, pg_instance):
    cases = open_disputes(db, 6)
    pg_instance.add_dynamic_partitions("disputes", cases)
    for age, case in enumerate(cases):
        settle(db, case, "completed", days_ago=age + 1)  # cases[0] newest
    policy = RetentionPolicy(days=30, max_settled=2)

    dry = run_archive_pass(db, pg_instance, policy, dry_run=True)
    assert dry.selected_keys == list(reversed(cases[2:]))  # oldest first
    assert len(pg_instance.get_dynamic_partitions("disputes")) == 6
    assert db.fetch_one("SELECT COUNT(*) AS n FROM archive_passes")["n"] == 0

    run_archive_pass(db, pg_instance, policy)
    assert sorted(pg_instance.get_dynamic_partitions("disputes")) == sorted(cases[:2])


def test_a_dispute_that_moves_while_the_pass_waits_for_its_lock_is_not_archived(db, pg_url):
    [case] = open_disputes(db, 1)
    settle(db, case, "invalid", days_ago=40)
    # Intake re-runs the invalid dispute: it holds the case lock and has moved it, not committed yet.
    from dispute_platform.store.db import Database

    other = Database(pg_url)
    conn_ready, release = threading.Event(), threading.Event()

    def rerun() -> None:
        def body(cur) -> None:
            lock_case(cur, case)
            cur.execute("UPDATE workflow_states SET status = 'running' WHERE case_id = %s", (case,))
            conn_ready.set()
            release.wait(30)

        other.transact(body)

    worker = threading.Thread(target=rerun)
    worker.start()
    assert conn_ready.wait(30)
    result: list[list[str]] = []
    marker = threading.Thread(target=lambda: result.append(db.transact(lambda cur: store.mark_archived(cur, [case], None))))
    marker.start()
    wait_for_lock_waiter(db)  # the pass waits on the case lock
    release.set()
    worker.join(30)
    marker.join(30)
    other.close()

    assert result == [[]]
    assert db.fetch_one("SELECT archived_at FROM workflow_states WHERE case_id = %s", (case,))["archived_at"] is None


def test_a_case_reopened_between_the_mark_and_the_delete_keeps_its_key(db, pg_instance, monkeypatch):
    cases = open_disputes(db, 2)
    pg_instance.add_dynamic_partitions("disputes", cases)
    for case in cases:
        settle(db, case, "completed", days_ago=40)
    real_delete = DagsterInstance.delete_dynamic_partition

    def delete_while_an_event_arrives(instance: DagsterInstance, name: str, key: str) -> None:
        if key == cases[0]:  # the event's transaction commits just before the key is deleted
            db.transact(lambda cur: store.unarchive(cur, key, "new event"))
        real_delete(instance, name, key)

    # on the class: the pass deletes through its own pooled instance over the same storage
    monkeypatch.setattr(DagsterInstance, "delete_dynamic_partition", delete_while_an_event_arrives)
    report = run_archive_pass(db, pg_instance, POLICY)

    assert report.figures.keys_restored == 1
    assert pg_instance.get_dynamic_partitions("disputes") == [cases[0]]
    trail = db.fetch_all("SELECT event FROM audit_log WHERE case_id = %s AND step = 'retention' ORDER BY id", (cases[0],))
    assert [r["event"] for r in trail] == ["partition_archived", "partition_restored"]


def test_dispute_archive_asset_reports_the_pass_as_metadata(db, pg_url, pg_instance, monkeypatch, request):
    monkeypatch.setenv("PARTITION_RETENTION_MAX", "1")
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    cases = open_disputes(db, 3)
    pg_instance.add_dynamic_partitions("disputes", cases)
    for age, case in enumerate(cases):
        settle(db, case, "executed", days_ago=age)

    result = materialize(
        [asset("dispute_archive")], instance=pg_instance, resources={"postgres": PostgresResource(database_url=pg_url)}
    )

    [mat] = result.asset_materializations_for_node("dispute_archive")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["archived"] == 2 and meta["partitions_before"] == 3 and meta["partitions_after"] == 1
    assert pg_instance.get_dynamic_partitions("disputes") == [cases[0]]


def test_two_passes_take_turns(db, pg_instance):
    from dispute_platform.workflow.retention import PASS_LOCK

    cases = open_disputes(db, 2)
    pg_instance.add_dynamic_partitions("disputes", cases)
    for case in cases:
        settle(db, case, "completed", days_ago=40)
    reports = []
    with db.session_lock(PASS_LOCK):  # another pass is under way
        second = threading.Thread(target=lambda: reports.append(run_archive_pass(db, pg_instance, POLICY)))
        second.start()
        wait_for_lock_waiter(db)
        assert db.fetch_one("SELECT COUNT(*) AS n FROM workflow_states WHERE archived_at IS NOT NULL")["n"] == 0
    second.join(60)
    assert reports and reports[0].figures.archived == 2


def test_a_pass_that_stopped_after_its_mark_is_finished_by_the_next(db, pg_instance, monkeypatch):
    cases = open_disputes(db, 2)
    pg_instance.add_dynamic_partitions("disputes", cases)
    for case in cases:
        settle(db, case, "completed", days_ago=40)

    def storage_down(instance: DagsterInstance, name: str, key: str) -> None:
        raise ConnectionError("Dagster storage went away")

    with monkeypatch.context() as patch:
        patch.setattr(DagsterInstance, "delete_dynamic_partition", storage_down)
        with pytest.raises(ConnectionError):
            run_archive_pass(db, pg_instance, POLICY)
    failed = db.fetch_one("SELECT * FROM archive_passes ORDER BY id LIMIT 1")
    assert failed["archived"] == 2 and "ConnectionError" in failed["error"] and failed["finished_at"] is not None
    assert len(pg_instance.get_dynamic_partitions("disputes")) == 2  # marked, keys still there

    report = run_archive_pass(db, pg_instance, POLICY)
    assert report.figures.keys_deleted == 2 and report.figures.archived == 0
    assert pg_instance.get_dynamic_partitions("disputes") == []
