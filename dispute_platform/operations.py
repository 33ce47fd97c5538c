"""Operations automation: the re-embedding backfill (weekly schedule, model-change sensor), the
refit of the proposal calibration when the history changes, and the daily cost report.

A re-embedding run carries a range of consecutive hash buckets (partition range tags), at most
`REEMBED_BUCKETS_PER_RUN` of them, like a backfill launched from the UI under the asset's
`BackfillPolicy.multi_run`. The runs take the `chroma_writer` pool, so they queue behind each
other and behind any other Chroma writer.
"""

from dataclasses import dataclass
from typing import Any

from dagster import (
    AssetsDefinition,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from dispute_platform.assets.knowledge import proposal_calibration
from dispute_platform.assets.reports import build_cost_report
from dispute_platform.assets.resolution_index import build_resolution_index, resolution_buckets
from dispute_platform.domain.reembed import BucketRange, all_buckets, run_ranges, stale_fingerprint
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.settings import Settings
from dispute_platform.store.history import changed_model_counts
from dispute_platform.workflow.calibration import history_version, stored_history_version
from dispute_platform.workflow.reembed import current_model_identity

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
STEP_TAG = "dispute_platform/step"
TRIGGER_TAG = "dispute_platform/trigger"
IN_PROGRESS = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]

calibration_job = define_asset_job(
    "calibration_job", selection=[proposal_calibration], description="Refit the calibration of proposal confidence."
)
CALIBRATION_SENSOR_INTERVAL_SECONDS = 300


def reembed_run_requests(ranges: list[BucketRange], *, only_stale: bool, trigger: str, key_prefix: str) -> list[RunRequest]:
    """One run per range of buckets; the run key makes a repeated request a no-op."""
    config = {"ops": {"resolution_index": {"config": {"only_stale": only_stale}}}}
    return [
        RunRequest(
            run_key=f"{key_prefix}:{r.start}-{r.end}",
            run_config=config,
            tags={RANGE_START: r.start, RANGE_END: r.end, STEP_TAG: "reembed", TRIGGER_TAG: trigger},
        )
        for r in ranges
    ]


def weekly_reembedding_requests(context: ScheduleEvaluationContext, per_run: int) -> list[RunRequest]:
    """One tick of `weekly_reembedding`: every bucket, `per_run` buckets a run."""
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:%M") if context.scheduled_execution_time else "manual"
    return reembed_run_requests(all_buckets(per_run), only_stale=False, trigger="schedule", key_prefix=f"weekly:{stamp}")


def reembed_changed_model(
    context: SensorEvaluationContext, postgres: PostgresResource, vectors: VectorStoreResource, per_run: int
) -> SkipReason | list[RunRequest]:
    """One tick of `embedding_model_sensor`."""
    identity = current_model_identity(vectors.embedding_model)
    changed = changed_model_counts(postgres.db, identity)
    if not changed:
        return SkipReason(f"every stored vector was made by {identity}")
    active = context.instance.get_runs_count(RunsFilter(statuses=IN_PROGRESS, tags={STEP_TAG: "reembed"}))
    if active:
        return SkipReason(f"{sum(changed.values())} stale vector(s); waiting for {active} re-embedding run(s) under way")
    ranges = run_ranges(changed, per_run)
    context.log.info(
        f"{sum(changed.values())} past case(s) in {len(changed)} bucket(s) were embedded by another model than "
        f"{identity}; requesting {len(ranges)} run(s)"
    )
    # The key names the model and the stale state: one request per change; a failed run is not
    # retried forever (re-execute it from the UI), but new stale rows make a new key.
    return reembed_run_requests(
        ranges, only_stale=True, trigger="model_change", key_prefix=f"model:{identity}:{stale_fingerprint(changed)}"
    )


@sensor(
    name="calibration_sensor",
    job=calibration_job,
    minimum_interval_seconds=CALIBRATION_SENSOR_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description="Refits proposal_calibration when the past cases in Postgres (or the embedding model) changed since "
    "the newest stored fit: new imports and executed resolutions change what precedent means.",
)
def calibration_sensor(context: SensorEvaluationContext, postgres: PostgresResource, vectors: VectorStoreResource):
    current = history_version(postgres.db, vectors)
    if stored_history_version(postgres.db) == current:
        return SkipReason(f"the newest calibration was fitted on the current history ({current})")
    active = context.instance.get_runs_count(RunsFilter(statuses=IN_PROGRESS, tags={STEP_TAG: "reembed"}))
    if active:  # the index is being rewritten: fit on it once it is whole
        return SkipReason(f"history changed; waiting for {active} re-embedding run(s) under way")
    # The run key names the history version: one fit per version of the history.
    return RunRequest(run_key=f"calibration:{current}", tags={STEP_TAG: "calibration", TRIGGER_TAG: "history_change"})


@dataclass(frozen=True)
class OperationsDefinitions:
    assets: list[AssetsDefinition]
    jobs: list[Any]  # define_asset_job's unresolved jobs (Dagster exports no name for their type)
    schedules: list[ScheduleDefinition]
    sensors: list[SensorDefinition]


def build_operations(settings: Settings) -> OperationsDefinitions:
    """The operations' assets, jobs, schedules and sensors, with their cadence and run sizes from `settings`."""
    per_run = settings.reembed_buckets_per_run
    index = build_resolution_index(per_run)
    report = build_cost_report(settings.cost_report_days, settings.home / "reports")
    reembed_job = define_asset_job(
        "reembed_resolutions",
        selection=[index],
        partitions_def=resolution_buckets,
        tags={STEP_TAG: "reembed"},
        description="Re-embed past cases into Chroma, a range of hash buckets per run.",
    )
    cost_report_job = define_asset_job("cost_report_job", selection=[report], description="Rebuild the LLM cost report.")

    @schedule(
        name="weekly_reembedding",
        job=reembed_job,
        cron_schedule=settings.reembed_cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Re-embeds every past case, all 64 buckets in runs of REEMBED_BUCKETS_PER_RUN: repairs an index "
        "that drifted from Postgres (lost folder, deleted entries) and keeps it on the current model.",
    )
    def weekly_reembedding(context: ScheduleEvaluationContext):
        return weekly_reembedding_requests(context, per_run)

    @sensor(
        name="embedding_model_sensor",
        job=reembed_job,
        minimum_interval_seconds=settings.reembed_sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description="Counts, in SQL, the past cases whose stored vector was made by another model than the configured "
        "one (name@weights fingerprint) and re-embeds their buckets at once.",
    )
    def embedding_model_sensor(context: SensorEvaluationContext, postgres: PostgresResource, vectors: VectorStoreResource):
        return reembed_changed_model(context, postgres, vectors, per_run)

    daily_cost_report = ScheduleDefinition(
        name="daily_cost_report",
        job=cost_report_job,
        cron_schedule=settings.cost_report_cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Rebuilds the LLM cost report every day.",
    )
    return OperationsDefinitions(
        assets=[index, report],
        jobs=[reembed_job, cost_report_job, calibration_job],
        schedules=[weekly_reembedding, daily_cost_report],
        sensors=[embedding_model_sensor, calibration_sensor],
    )
