#!/usr/bin/env python3
"""Steady state of the partition set under retention: a compressed-clock simulation.

A Postgres-backed Dagster instance (dagster-postgres storage in a scratch database, the same server
and database layout the deployment uses) and the platform's own tables in it. The clock runs
`--days` simulated days of `--per-day` disputes, in `--ticks-per-day` ticks (the archive schedule is
hourly; a tick stands for a few hours here). Each tick:

- new disputes arrive: their `workflow_states` and `dispute_events` rows are written in bulk, their
  keys are added to the `disputes` partition set in one call, and one intake run per
  `--per-run` disputes is recorded (a run record, and one materialisation per dispute of each of
  raw_case, enriched_context and ai_proposal, written through Dagster's own storage API,
  `store_event_batch`);
- disputes that arrived a day or two ago (half after one day, half after two) settle: status
  completed, and one review run per `--per-run` of them records review_decision,
  executed_resolution and resolution_embedding the same way;
- the real archive pass (workflow/retention.py: the function the hourly schedule runs) runs once
  with the simulated `now`.

At the end of each simulated day it prints: partition count (the peak before the day's passes and
after the last), Dagster runs, event-log rows (`SELECT COUNT(*) FROM event_logs`, a measurement
only) and the table's size on disk (`pg_total_relation_size`: rows deleted but not vacuumed still
take their space), platform dispute rows (never decreasing), the archived total, the day's pass seconds and the
day's wall seconds. It ends with the three
targets of issue 13.

Bodies are representative, not real: no model, no provider; what is measured is what the
partition set and Dagster's storage hold, and that the pass keeps them bounded while Postgres
keeps every row. Real runs also write step and planned events (about 2-3x the rows per dispute); the
pass deletes those with their runs all the same.

Scale: the defaults (`--per-day 240 --days 12 --ticks-per-day 12`) finish in about 10 minutes on
this 2-core machine under the other helpers' load (load average ~7; `--days 18` took 989 s). The
retention count and the 25,000 bound are scaled by per_day / 10,000 (PARTITION_RETENTION_MAX
9,000 -> 216, bound 25,000 -> 600). Passes every 2 simulated hours are stricter than the hourly
schedule (two hours of arrivals between passes, not one). What costs time is Dagster's storage,
not the platform: on Postgres each key delete, run delete and listing opens its own connection.
`--per-day 10000 --days 365 --ticks-per-day 24` is the full figure (hours). The output says which
scale it ran at.

`run_steady_state(args)` is importable (scripts/bench_scale.py calls it); `parse_args()` gives the
defaults.

Usage: python scripts/bench_retention.py [--days 12] [--per-day 240] [--ticks-per-day 12] [--per-run 250]
"""

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FULL_PER_DAY = 10_000
FULL_BOUND = 25_000
INTAKE_ASSETS = ("raw_case", "enriched_context", "ai_proposal")
REVIEW_ASSETS = ("review_decision", "executed_resolution", "resolution_embedding")
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=12, help="Simulated days (365: a year).")
    parser.add_argument("--per-day", type=int, default=240, help="Disputes a day (10000: the issue's figure).")
    parser.add_argument(
        "--ticks-per-day", type=int, default=12, help="Archive passes (and arrival batches) a day (the schedule: 24)."
    )
    parser.add_argument("--per-run", type=int, default=250, help="Disputes one intake or review run carries.")
    parser.add_argument("--retention-days", type=int, default=30, help="PARTITION_RETENTION_DAYS.")
    parser.add_argument(
        "--retention-max", type=int, default=None, help="PARTITION_RETENTION_MAX (default: 9,000 scaled by per-day / 10,000)."
    )
    parser.add_argument("--bound", type=int, default=None, help="Partition bound (default: 25,000 scaled by per-day / 10,000).")
    parser.add_argument("--batch-size", type=int, default=1_000, help="ARCHIVE_BATCH_SIZE.")
    parser.add_argument("--admin-url", default=os.environ.get("TEST_DATABASE_ADMIN_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--quiet", action="store_true", help="Only the summary lines.")
    return parser.parse_args(argv)


@dataclass
class Day:
    day: int
    peak_partitions: int
    partitions: int
    runs: int
    event_rows: int
    platform_rows: int
    archived: int
    pass_seconds: float
    event_mb: float = 0.0


@dataclass
class SteadyState:
    args: dict[str, Any]
    days: list[Day] = field(default_factory=list)
    seconds: float = 0.0
    max_partitions: int = 0
    bound: int = 0
    rows_lost: int = 0
    event_growth_last_third: float = 0.0
    event_growth_first_third: float = 0.0
    event_mb_growth_last_third: float = 0.0
    lines: list[str] = field(default_factory=list)

    @property
    def bound_met(self) -> bool:
        return self.max_partitions <= self.bound

    @property
    def event_log_bounded(self) -> bool:
        # Bounded: over the last third the event log grows by at most 10% of what it held at the
        # start of that third (it no longer grows with the disputes taken in).
        # On disk too: deleted rows must be reclaimed (vacuumed), or the table grows all the same.
        return self.event_growth_last_third <= 0.10 and self.event_mb_growth_last_third <= 0.10


def _env() -> None:
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("LOG_DIR", tempfile.mkdtemp(prefix="bench-retention-logs-"))
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def _instance(home: Path, url: str):
    import yaml
    from dagster import DagsterInstance

    from dispute_platform.local import dagster_yaml
    from dispute_platform.store.db import sqlalchemy_url

    os.environ["DAGSTER_POSTGRES_URL"] = sqlalchemy_url(url)
    config = {k: v for k, v in dagster_yaml().items() if k != "python_logs"}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return DagsterInstance.from_config(str(home))


def _record_runs(instance, keys: list[str], assets: tuple[str, ...], per_run: int, when: datetime, step: str) -> None:
    """One finished run per `per_run` keys, each with one materialisation per key and asset."""
    from dagster import AssetKey, AssetMaterialization, DagsterEvent, DagsterEventType, DagsterRun, DagsterRunStatus
    from dagster._core.events import StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    for start in range(0, len(keys), per_run):
        chunk = keys[start : start + per_run]
        run_id = str(uuid.uuid4())
        tags = {"dispute_platform/step": step}
        if len(chunk) == 1:
            tags["dagster/partition"] = chunk[0]
        else:
            tags |= {"dagster/asset_partition_range_start": chunk[0], "dagster/asset_partition_range_end": chunk[-1]}
        instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id=run_id, status=DagsterRunStatus.SUCCESS, tags=tags))
        entries = []
        for asset in assets:
            for key in chunk:
                event = DagsterEvent(
                    event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                    job_name="__ASSET_JOB",
                    event_specific_data=StepMaterializationData(
                        AssetMaterialization(asset_key=AssetKey(asset), partition=key, metadata={"case": key})
                    ),
                )
                entries.append(
                    EventLogEntry(
                        error_info=None,
                        level="DEBUG",
                        user_message="",
                        run_id=run_id,
                        timestamp=when.timestamp(),
                        step_key=asset,
                        job_name="__ASSET_JOB",
                        dagster_event=event,
                    )  # fmt: skip
                )
        instance.event_log_storage.store_event_batch(entries)


def _arrive(db, instance, keys: list[str], when: datetime, per_run: int) -> None:
    from psycopg2.extras import execute_values

    from dispute_platform.store.repo import workflow_run_id

    def write(cur) -> None:
        execute_values(
            cur,
            """INSERT INTO workflow_states (run_id, case_id, status, current_step, created_at, updated_at)
               VALUES %s""",
            [(workflow_run_id(k), k, "pending_review", "ai_proposal", when, when) for k in keys],
            page_size=1000,
        )
        execute_values(
            cur,
            "INSERT INTO dispute_events (case_id, event_id, body, received_at) VALUES %s",
            [(k, f"evt-{k}", json.dumps({"case_id": k}), when) for k in keys],
            page_size=1000,
        )

    db.transact(write)
    instance.add_dynamic_partitions("disputes", keys)
    _record_runs(instance, keys, INTAKE_ASSETS, per_run, when, "intake")


def _settle(db, instance, keys: list[str], when: datetime, per_run: int) -> None:
    db.transact(
        lambda cur: cur.execute(
            "UPDATE workflow_states SET status = 'completed', updated_at = %s, completed_at = %s WHERE case_id = ANY(%s)",
            (when, when, keys),
        )
    )
    _record_runs(instance, keys, REVIEW_ASSETS, per_run, when, "review")


def run_steady_state(args: argparse.Namespace) -> SteadyState:
    """Run the simulation (see the module docstring); prints as it goes unless args.quiet and
    returns the figures, the final lines included."""
    _env()
    from dispute_platform.domain.retention import RetentionPolicy
    from dispute_platform.store.db import Database
    from dispute_platform.store.scratch import scratch_database
    from dispute_platform.workflow.retention import run_archive_pass

    scale = args.per_day / FULL_PER_DAY
    retention_max = args.retention_max if args.retention_max is not None else max(1, round(9_000 * scale))
    bound = args.bound if args.bound is not None else max(1, round(FULL_BOUND * scale))
    policy = RetentionPolicy(args.retention_days, retention_max)
    result = SteadyState(args=vars(args).copy(), bound=bound)
    say = (lambda *_: None) if getattr(args, "quiet", False) else (lambda *a: print(*a, flush=True))
    say(
        f"steady-state simulation: {args.days} days x {args.per_day:,} disputes/day ({scale:.2%} of the issue's 10,000), "
        f"{args.ticks_per_day} archive passes/day, runs of {args.per_run}; retention {policy.days} days / newest "
        f"{policy.max_settled:,} settled; bound {bound:,}"
    )
    say(
        f"{'day':>4} {'peak keys':>10} {'keys':>8} {'runs':>7} {'event rows':>11} {'event MB':>9} {'platform rows':>14} "
        f"{'archived':>10} {'pass s':>7} {'day s':>6}"
    )
    began = time.perf_counter()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    tick = timedelta(days=1) / args.ticks_per_day
    per_tick = [
        args.per_day // args.ticks_per_day + (1 if i < args.per_day % args.ticks_per_day else 0)
        for i in range(args.ticks_per_day)
    ]
    due: dict[int, list[str]] = {}  # tick index -> keys that settle then
    seq = 0
    with (
        scratch_database(args.admin_url, "dp_bench_retention", migrate=True) as url,
        tempfile.TemporaryDirectory(prefix="bench-retention-") as home,
    ):
        db = Database(url, maxconn=2)
        instance = _instance(Path(home), url)
        try:
            previous_rows = 0
            for day in range(args.days):
                day_began = time.perf_counter()
                peak = 0
                pass_seconds = 0.0
                archived_today = 0
                for t in range(args.ticks_per_day):
                    index = day * args.ticks_per_day + t
                    now = start + index * tick
                    keys = [f"SIM-{seq + i:08d}" for i in range(per_tick[t])]
                    seq += len(keys)
                    if keys:
                        _arrive(db, instance, keys, now, args.per_run)
                        for n, key in enumerate(keys):  # half settle after a day, half after two
                            due.setdefault(index + args.ticks_per_day * (1 + n % 2), []).append(key)
                    settling = due.pop(index, [])
                    if settling:
                        _settle(db, instance, settling, now, args.per_run)
                    peak = max(peak, len(instance.get_dynamic_partitions("disputes")))
                    started = time.perf_counter()
                    report = run_archive_pass(db, instance, policy, batch_size=args.batch_size, now=now, trigger="bench")
                    pass_seconds += time.perf_counter() - started
                    archived_today += report.figures.archived
                counts = db.fetch_one(
                    """SELECT (SELECT COUNT(*) FROM workflow_states) AS platform,
                              (SELECT COUNT(*) FROM workflow_states WHERE archived_at IS NOT NULL) AS archived,
                              (SELECT COUNT(*) FROM public.event_logs) AS events,
                              (SELECT COUNT(*) FROM public.runs) AS runs,
                              pg_total_relation_size('public.event_logs') AS event_bytes"""
                )
                if counts["platform"] < previous_rows:
                    result.rows_lost += previous_rows - counts["platform"]
                previous_rows = counts["platform"]
                keys_now = len(instance.get_dynamic_partitions("disputes"))
                row = Day(
                    day + 1,
                    peak,
                    keys_now,
                    counts["runs"],
                    counts["events"],
                    counts["platform"],
                    counts["archived"],
                    pass_seconds,
                    counts["event_bytes"] / 1e6,
                )
                result.days.append(row)
                result.max_partitions = max(result.max_partitions, peak, keys_now)
                say(
                    f"{row.day:>4} {row.peak_partitions:>10,} {row.partitions:>8,} {row.runs:>7,} {row.event_rows:>11,} "
                    f"{row.event_mb:>9,.0f} {row.platform_rows:>14,} {row.archived:>10,} {row.pass_seconds:>7.2f} "
                    f"{time.perf_counter() - day_began:>6.1f}"
                )
            expected = seq
            final = db.fetch_one("SELECT COUNT(*) AS n FROM workflow_states")["n"]
            result.rows_lost += max(0, expected - final)
        finally:
            instance.dispose()
            db.close()
    result.seconds = time.perf_counter() - began
    third = max(1, len(result.days) // 3)
    if len(result.days) >= 3:
        first_third_start, last_third_start = result.days[0].event_rows, result.days[-third - 1].event_rows
        end = result.days[-1].event_rows
        result.event_growth_last_third = (end - last_third_start) / max(1, last_third_start)
        result.event_growth_first_third = (result.days[third - 1].event_rows - first_third_start) / max(1, first_third_start)
        mb_start = result.days[-third - 1].event_mb
        result.event_mb_growth_last_third = (result.days[-1].event_mb - mb_start) / max(1e-9, mb_start)
    result.lines = [
        f"simulated {args.days} days x {args.per_day:,}/day ({seq:,} disputes) in {result.seconds:.0f} s"
        + (
            ""
            if args.per_day >= FULL_PER_DAY
            else f"; scaled run: bound and retention count x {scale:g} of the full 10,000/day figure"
        ),
        f"steady state: max partitions {result.max_partitions:,} (bound {bound:,}) {'MET' if result.bound_met else 'MISSED'}",
        f"postgres rows lost: {result.rows_lost} {'MET' if result.rows_lost == 0 else 'MISSED'}",
        f"event log bounded: {result.days[-1].event_rows if result.days else 0:,} rows at the end; growth over the last "
        f"third {result.event_growth_last_third:+.1%} (first third {result.event_growth_first_third:+.1%}); on disk "
        f"{result.days[-1].event_mb if result.days else 0:,.0f} MB, {result.event_mb_growth_last_third:+.1%} over the last third "
        f"{'MET' if result.event_log_bounded else 'MISSED'}",
    ]
    for line in result.lines:
        print(line)
    return result


if __name__ == "__main__":
    outcome = run_steady_state(parse_args())
    sys.exit(0 if outcome.bound_met and outcome.rows_lost == 0 and outcome.event_log_bounded else 1)
