"""The archive pass: settled disputes leave Dagster's partition set; Postgres keeps everything.

One pass:
1. lists the `disputes` keys once, and the keys of every Dagster run still queued or going;
2. asks the pure rule (domain/retention.py) which settled disputes to archive, treating as in flight
   every non-final dispute, every dispute a run in progress covers, and every rejection whose review
   run has not happened yet;
3. per batch: marks the disputes archived in Postgres, each under its case lock and only if it is
   still settled (a dispute that moved meanwhile is skipped); deletes their keys
   (`instance.delete_dynamic_partition`, one key a call in 1.13, a few calls side by side, over
   pooled connections: `pooled`); gives back the key of any dispute re-opened while the batch
   ran; then deletes the finished runs whose
   every partition is now archived (`instance.delete_run`, which removes the run and all its event
   rows: the only supported way to remove event rows on SQL storage in 1.13.27);
4. records the pass in `archive_passes`. A pass that stopped between a mark and its deletes is
   finished by the next: keys of disputes already marked archived go first;
5. on a server whose autovacuum is off, vacuums the tables it churned once they are due
   (store/maintenance.py): without it the event log stays bounded in rows but not on disk.

What Dagster keeps (1.13.27, Postgres or SQLite storage): `wipe_asset_partitions` raises
NotImplementedError there, and `wipe_asset` only hides a whole asset's history; so events are
removed run by run. A run that also holds a dispute still in the set is kept until that one is
archived too. Runless events, `asset_check_executions` rows and per-asset summary rows are not
removed by any supported call; see docs/operations.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, EventRecordsFilter, RunsFilter

from dispute_platform.domain.retention import RetentionPolicy, keys_to_archive
from dispute_platform.store import retention as store
from dispute_platform.store.db import Database
from dispute_platform.store.maintenance import DAGSTER_CHURNED, PLATFORM_CHURNED, vacuum_if_autovacuum_off

log = logging.getLogger(__name__)

PARTITIONS_NAME = "disputes"
DISPUTE_ASSETS = tuple(
    AssetKey(name)
    for name in ("raw_case", "enriched_context", "ai_proposal", "review_decision", "executed_resolution", "resolution_embedding")
)
IN_PROGRESS = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
MATERIALIZED, PLANNED = DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_MATERIALIZATION_PLANNED
FINISHED = frozenset({DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED})
PARTITION_TAG = "dagster/partition"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
_PAGE = 5_000
PASS_LOCK = "dispute_platform:archive_pass"
_WORKERS = 4  # concurrent storage calls of one pass
_STATEMENT_TIMEOUT_MS = 600_000  # for the pass's pooled connections (a stuck statement fails the pass, not the day)
_POOL_RECYCLE_SECONDS = 3_600


@dataclass
class ArchiveReport:
    pass_id: int | None
    dry_run: bool
    figures: store.PassFigures
    batches: int = 0
    seconds: float = 0.0
    selected_keys: list[str] = field(default_factory=list)
    vacuumed: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, object]:
        f = self.figures
        return {
            "pass_id": self.pass_id if self.pass_id is not None else "dry run",
            "partitions_before": f.partitions_before,
            "partitions_after": f.partitions_after if f.partitions_after is not None else f.partitions_before,
            "selected": f.selected,
            "archived": f.archived,
            "skipped_changed_state": f.skipped_changed,
            "keys_deleted": f.keys_deleted,
            "keys_restored": f.keys_restored,
            "runs_deleted": f.runs_deleted,
            "event_rows_removed": f.event_rows_removed,
            "batches": self.batches,
            "vacuumed": ", ".join(self.vacuumed) or "none",
            "seconds": round(self.seconds, 2),
        }


def chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def keys_of_active_runs(instance: DagsterInstance, keys: Sequence[str]) -> set[str]:
    """The dispute keys a queued or running run covers: its partition, or its range resolved
    against the key order (an end already gone protects everything on that side)."""
    index = {key: i for i, key in enumerate(keys)}
    covered: set[str] = set()
    for run in instance.get_runs(RunsFilter(statuses=IN_PROGRESS)):
        tags = run.tags
        if PARTITION_TAG in tags:
            covered.add(tags[PARTITION_TAG])
        if RANGE_START in tags or RANGE_END in tags:
            start = index.get(tags.get(RANGE_START, ""), 0)
            end = index.get(tags.get(RANGE_END, ""), len(keys) - 1)
            covered.update(keys[start : end + 1])
    return covered


def runs_touching(instance: DagsterInstance, case_ids: Sequence[str]) -> set[str]:
    """Runs holding a materialisation (or a planned one) of any of these dispute partitions.

    Read through the event log storage (`get_event_records`, paged by storage id): the instance's
    `fetch_planned_materializations` is deprecated in 1.13 and warned on every pass."""

    def one(asset_key: AssetKey, event_type: DagsterEventType) -> set[str]:
        found: set[str] = set()
        after: int | None = None
        while True:
            records = instance.event_log_storage.get_event_records(
                EventRecordsFilter(event_type, asset_key=asset_key, asset_partitions=list(case_ids), after_cursor=after),
                limit=_PAGE,
                ascending=True,
            )
            found.update(r.run_id for r in records if r.run_id)
            if len(records) < _PAGE:
                return found
            after = records[-1].storage_id

    jobs = [(key, kind) for key in DISPUTE_ASSETS for kind in (MATERIALIZED, PLANNED)]
    with ThreadPoolExecutor(_WORKERS) as pool:
        return set().union(*pool.map(lambda job: one(*job), jobs))


def delete_keys(instance: DagsterInstance, keys: Sequence[str]) -> None:
    """Delete a batch of keys. Dagster 1.13 deletes one key a call (a table check and the delete);
    on the pass's pooled instance a few calls side by side take ~0.7 s per 1,000 keys here."""
    with ThreadPoolExecutor(_WORKERS) as pool:
        list(pool.map(lambda key: instance.delete_dynamic_partition(PARTITIONS_NAME, key), keys))


def _run_keys(instance: DagsterInstance, run_id: str, tags: dict[str, str]) -> set[str]:
    keys = {p for parts in instance.get_asset_partitions_for_run(run_id).values() for p in parts if p is not None}
    keys.update(tags[t] for t in (PARTITION_TAG, RANGE_START, RANGE_END) if t in tags)
    return keys


def prune_runs(instance: DagsterInstance, archived: Sequence[str], live_keys: set[str]) -> tuple[int, int]:
    """Delete the finished runs touching `archived` whose every dispute partition has left the set.
    Returns (runs deleted, event rows removed with them)."""

    def prune(run_id: str) -> int | None:
        record = instance.get_run_record_by_id(run_id)
        if record is None or record.dagster_run.status not in FINISHED:
            return None
        if _run_keys(instance, run_id, dict(record.dagster_run.tags)) & live_keys:
            return None  # still holds the history of a dispute in the set: kept until that one goes
        rows = len(instance.get_records_for_run(run_id).records)
        instance.delete_run(run_id)
        return rows

    with ThreadPoolExecutor(_WORKERS) as pool:
        removed = [r for r in pool.map(prune, sorted(runs_touching(instance, archived))) if r is not None]
    return len(removed), sum(removed)


@contextmanager
def pooled(instance: DagsterInstance) -> Iterator[DagsterInstance]:
    """The pass's own instance over the same storage, with pooled connections.

    dagster-postgres opens a connection per storage call (NullPool), and deleting one key is two
    calls (a table check, then the delete): ~7 ms a key here, 70 s for a day of 10,000 disputes.
    Dagster's webserver avoids that with `optimize_for_webserver` (a small pool held open); the pass
    does the same on a copy of the instance from its ref, so the caller's instance (a run's, the
    CLI's) is left as it was. An instance with no ref (ephemeral, in-memory) is used as it is."""
    if not instance.is_persistent:
        yield instance
        return
    try:
        own = DagsterInstance.from_ref(instance.get_ref())
    except Exception:  # noqa: BLE001 - a ref that cannot be reopened: the caller's instance serves
        log.warning("archive pass: could not open a pooled instance; using the caller's", exc_info=True)
        yield instance
        return
    try:
        own.optimize_for_webserver(_STATEMENT_TIMEOUT_MS, _POOL_RECYCLE_SECONDS, _WORKERS)
        yield own
    finally:
        own.dispose()


def vacuum_churned(db: Database, instance: DagsterInstance) -> list[str]:
    """After a pass that changed something: the tables it churned, vacuumed if the server's
    autovacuum is off and they are due (store/maintenance.py). Dagster's on Postgres storage only."""
    done = vacuum_if_autovacuum_off(db.url, PLATFORM_CHURNED, db.schema)
    dagster_url = getattr(instance.event_log_storage, "postgres_url", None)
    if isinstance(dagster_url, str):
        done += vacuum_if_autovacuum_off(dagster_url, DAGSTER_CHURNED)
    return done


def run_archive_pass(
    db: Database,
    instance: DagsterInstance,
    policy: RetentionPolicy,
    *,
    batch_size: int = 1_000,
    now: datetime | None = None,
    dry_run: bool = False,
    trigger: str = "schedule",
) -> ArchiveReport:
    """One archive pass (see the module docstring). A dry run decides and reports, and changes
    nothing (no `archive_passes` row either). Passes take turns (a session lock): the schedule and
    `dispute-platform archive` never select from each other's half-done batches."""
    with pooled(instance) as own:
        if dry_run:
            return _archive_pass(db, own, policy, batch_size=batch_size, now=now, dry_run=True, trigger=trigger)
        with db.session_lock(PASS_LOCK, wait_seconds=900):
            return _archive_pass(db, own, policy, batch_size=batch_size, now=now, dry_run=False, trigger=trigger)


def _archive_pass(
    db: Database,
    instance: DagsterInstance,
    policy: RetentionPolicy,
    *,
    batch_size: int,
    now: datetime | None,
    dry_run: bool,
    trigger: str,
) -> ArchiveReport:
    began = time.perf_counter()
    keys = list(instance.get_dynamic_partitions(PARTITIONS_NAME))
    live = set(keys)
    in_flight = keys_of_active_runs(instance, keys) | db.transact(store.final_but_awaiting_run)
    settled = db.transact(store.settled_unarchived)
    chosen = keys_to_archive(settled, in_flight, now or datetime.now(UTC), policy)
    figures = store.PassFigures(partitions_before=len(keys), selected=len(chosen))
    if dry_run:
        figures.partitions_after = len(live - set(chosen))
        return ArchiveReport(None, True, figures, seconds=time.perf_counter() - began, selected_keys=chosen)

    pass_id = db.transact(lambda cur: store.start_pass(cur, trigger, policy.days, policy.max_settled))
    report = ArchiveReport(pass_id, False, figures, selected_keys=chosen)
    # Marked archived but still holding a key: a pass that stopped between its mark and its delete.
    stranded = db.transact(lambda cur: store.archived_among(cur, keys))
    try:
        for batch, resumed in [(stranded, True)] * bool(stranded) + [(b, False) for b in chunks(chosen, batch_size)]:
            if resumed:
                marked = list(batch)
            else:
                marked = db.transact(lambda cur, batch=batch: store.mark_archived(cur, batch, pass_id))
                figures.archived += len(marked)
                figures.skipped_changed += len(batch) - len(marked)
            present = [key for key in marked if key in live]
            delete_keys(instance, present)
            live.difference_update(present)
            figures.keys_deleted += len(present)
            # A new event may have re-opened one of them between the mark and the delete; the
            # sensor only gives back a key it sees missing, so give it back here.
            restored = db.transact(lambda cur, marked=marked: store.not_archived(cur, marked))
            if restored:
                instance.add_dynamic_partitions(PARTITIONS_NAME, restored)
                live.update(restored)
                figures.keys_restored += len(restored)
            gone = [k for k in marked if k not in live]
            if gone:
                runs, rows = prune_runs(instance, gone, live)
                figures.runs_deleted += runs
                figures.event_rows_removed += rows
            report.batches += 1
            db.transact(lambda cur: store.record_pass(cur, pass_id, figures, finished=False))
    except Exception as exc:
        figures.error = f"{type(exc).__name__}: {exc}"[:2000]
        db.transact(lambda cur: store.record_pass(cur, pass_id, figures, finished=True))
        raise
    figures.partitions_after = len(instance.get_dynamic_partitions(PARTITIONS_NAME))
    db.transact(lambda cur: store.record_pass(cur, pass_id, figures, finished=True))
    if figures.archived or figures.keys_deleted or figures.runs_deleted:
        report.vacuumed = vacuum_churned(db, instance)
    report.seconds = time.perf_counter() - began
    log.info(
        "archive pass %s: %s selected, %s archived, %s skipped, %s runs deleted, %s partitions left",
        pass_id, figures.selected, figures.archived, figures.skipped_changed, figures.runs_deleted, figures.partitions_after,
    )  # fmt: skip
    return report
