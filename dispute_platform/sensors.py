"""Sensors: SQS dispute events in; decisions in Postgres out to execution.

`sqs_dispute_sensor` stores events before deleting messages, then derives the disputes to start
from Postgres (events after its cursor), not from the messages in hand: if a tick dies after
storing and deleting, the next tick still starts those disputes. Run keys name the first and last
event of a batch, so a repeated request is dropped by Dagster.
"""


from dagster import (
    AssetKey,
    DefaultSensorStatus,
    ResourceParam,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from dispute_platform.partitions import disputes_partitions
from dispute_platform.resources.email import EmailSender
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.sqs import SQSResource
from dispute_platform.settings import get_settings
from dispute_platform.store import repo
from dispute_platform.workflow.intake import ingest_from_queue
from dispute_platform.store import reviewers as reviewer_store
from dispute_platform.workflow.notify import escalate_overdue, notify_overdue

INTAKE_ASSETS = [AssetKey("raw_case"), AssetKey("enriched_context"), AssetKey("ai_proposal")]
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def even_batches(items: list, most: int) -> list[list]:
    """As few batches as `most` per batch allows, their sizes differing by at most one: 101 new
    disputes make runs of 51 and 50, not 100 and a lone 1 that pays a whole run's start-up."""
    if not items:
        return []
    count = -(-len(items) // most)
    size, extra = divmod(len(items), count)
    batches, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        batches.append(items[start:end])
        start = end
    return batches


def intake_run_requests(new: list[repo.NewDispute], existing: set[str], per_run: int) -> list[RunRequest]:
    """One run per batch of freshly added partitions (a contiguous range: dynamic partitions keep
    insertion order), and one run per dispute whose partition already existed (it is not at the
    end of the order, so it cannot join a range)."""
    requests = []
    appended = [d for d in new if d.case_id not in existing]
    for chunk in even_batches(appended, per_run):
        requests.append(
            RunRequest(
                run_key=f"intake:{chunk[0].first_event_id}-{chunk[-1].first_event_id}",
                asset_selection=INTAKE_ASSETS,
                tags={RANGE_START: chunk[0].case_id, RANGE_END: chunk[-1].case_id, "dispute_platform/step": "intake"},
            )
        )
    for dispute in new:
        if dispute.case_id in existing:
            requests.append(
                RunRequest(
                    run_key=f"intake:{dispute.first_event_id}",
                    asset_selection=INTAKE_ASSETS,
                    partition_key=dispute.case_id,
                    tags={"dispute_platform/step": "intake"},
                )
            )
    return requests


@sensor(
    name="sqs_dispute_sensor",
    minimum_interval_seconds=get_settings().sqs_sensor_interval_seconds,
    default_status=DefaultSensorStatus.RUNNING,
    asset_selection=INTAKE_ASSETS,
    description="Receives dispute events from SQS in batches of 10 (several receives in flight), stores them (bad "
    "bodies become rejected_events rows), deletes the messages, adds a partition per new dispute and starts intake "
    "runs.",
)
def sqs_dispute_sensor(context: SensorEvaluationContext, sqs: SQSResource, postgres: PostgresResource):
    settings = get_settings()
    db = postgres.db
    # SQS_HAND_OVER: a run's worth stored ends the tick (its run is created now, the rest next tick).
    stats = ingest_from_queue(
        db,
        sqs,
        max_messages=settings.sqs_max_messages_per_tick,
        budget_seconds=settings.sqs_tick_budget_seconds,
        receivers=settings.sqs_receivers,
        hand_over_at=settings.disputes_per_run if settings.sqs_hand_over else None,
    )
    cursor = int(context.cursor or 0)
    max_new = settings.disputes_per_run * 10
    new, returning, upto = db.transact(lambda cur: events_since(cur, cursor, max_new))
    context.log.info(
        f"received {stats.received} ({stats.stored} new, {stats.duplicates} redelivered, {stats.rejected} rejected) "
        f"in {stats.seconds}s; {len(new)} new dispute(s), {len(returning)} known case(s) with a new event"
    )
    if not new and not returning:
        return SkipReason(f"no new disputes ({stats.received} messages, {stats.rejected} rejected)")
    keys = [d.case_id for d in new]
    # One listing per tick: asking the instance key by key costs a query each (13 s per 1,000).
    known = set(context.instance.get_dynamic_partitions(disputes_partitions.name))
    existing = {k for k in keys if k in known}
    # A known case whose key the archive pass removed gets it back (intake cleared its archived_at
    # when the event was stored). It starts no run, as for any known case with a new event.
    restored = sorted({r.case_id for r in returning if r.case_id not in known})
    if restored:
        context.log.info(f"{len(restored)} archived case(s) came back; their partitions are added again: {restored[:10]}")
    if not new and not restored:
        return SensorResult(skip_reason=SkipReason("no new disputes; known cases' new events need nothing"), cursor=str(upto))
    return SensorResult(
        dynamic_partitions_requests=[disputes_partitions.build_add_request([k for k in keys if k not in existing] + restored)],
        run_requests=intake_run_requests(new, existing, settings.disputes_per_run),
        cursor=str(upto),
    )


def events_since(cur, cursor: int, max_new: int) -> tuple[list[repo.NewDispute], list[repo.ReturningDispute], int]:
    """New disputes after `cursor` (at most `max_new`), the known cases with a new event up to the
    same point, and that point (the next cursor): the last new dispute's first event when the
    batch was cut, else the last event stored."""
    new = repo.new_disputes_after(cur, cursor, max_new)
    upto = new[-1].first_event_id if len(new) >= max_new else max(repo.last_event_id(cur), cursor)
    return new, repo.returning_disputes_between(cur, cursor, upto), upto



REVIEW_ASSETS = [AssetKey("review_decision"), AssetKey("executed_resolution"), AssetKey("resolution_embedding")]


def review_run_requests(decided: list[dict]) -> list[RunRequest]:
    """One run per decided dispute, keyed on its final decision: Dagster drops a request whose
    run key it has seen, so asking again on every tick starts each decision once."""
    return [
        RunRequest(
            run_key=f"review:{d['case_id']}:{d['decision_id']}",
            partition_key=d["case_id"],
            asset_selection=REVIEW_ASSETS,
            tags={"dispute_platform/step": "review", "dispute_platform/decision_id": str(d["decision_id"])},
        )
        for d in decided
    ]


@sensor(
    name="review_decision_sensor",
    minimum_interval_seconds=get_settings().review_sensor_interval_seconds,
    default_status=DefaultSensorStatus.RUNNING,
    asset_selection=REVIEW_ASSETS,
    description="Finds, by their state in Postgres, disputes whose current proposal has a final decision not yet "
    "carried out, and starts review_decision -> executed_resolution -> resolution_embedding for each (one run per "
    "decision); escalates reviews pending longer than the SLA.",
)
def review_decision_sensor(
    context: SensorEvaluationContext,
    postgres: PostgresResource,
    sqs: SQSResource,
    email: ResourceParam[EmailSender],
):
    settings = get_settings()
    db = postgres.db
    for overdue in db.transact(lambda cur: repo.overdue_reviews(cur, settings.review_sla_hours)):
        # Compare-and-set: a decision recorded since the read wins, and nobody is told twice.
        if not escalate_overdue(db, overdue["case_id"], overdue["proposal_version"], settings.review_sla_hours):
            continue
        full = db.transact(lambda cur, case_id=overdue["case_id"]: repo.workflow_state(cur, case_id))
        notify_overdue(db, email, sqs, settings, full)
        context.log.info(f"{overdue['case_id']}: review pending beyond {settings.review_sla_hours} h, escalated")
    # By state, never by a decision-id cursor: ids are handed out before their transactions
    # commit, so a cursor skips a decision that commits after a later one.
    decided = db.transact(lambda cur: reviewer_store.decided_awaiting_execution(cur))
    if not decided:
        return SkipReason("no decided dispute awaits execution")
    return SensorResult(run_requests=review_run_requests(decided))
