"""Sensors: SQS dispute events in; decisions in Postgres out to execution.

`sqs_dispute_sensor` stores events before deleting messages, then derives the disputes to start
from Postgres (events after its cursor), not from the messages in hand: if a tick dies after
storing and deleting, the next tick still starts those disputes. Run keys name the first and last
event of a batch, so a repeated request is dropped by Dagster.

Both sensors write which disputes each requested run is for (`run_disputes`, the run's
`dispute_platform/batch` tag) before handing the request over, so a run's assets act on exactly
those disputes even when another writer added a partition inside the run's range
(`run_keys.run_disputes`). `review_decision_sensor` carries a tick's decisions in as few runs as
the partition set allows: Dagster 1.13 gives a step a single key or a range of keys, never a
scattered set, so decided disputes that are near each other in the partition set (at most
REVIEW_RANGE_MAX_GAP keys apart) share a range run (up to REVIEW_BATCH_SIZE), restricted to them by
`run_disputes`, and a decided dispute with none near it gets a run of its own.
"""

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    ResourceParam,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from dispute_platform.partitions import disputes_partitions
from dispute_platform.resources.email import EmailSender
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.sqs import SQSResource
from dispute_platform.run_keys import BATCH_TAG
from dispute_platform.settings import Settings
from dispute_platform.store import repo
from dispute_platform.store import reviewers as reviewer_store
from dispute_platform.store import run_disputes as batches
from dispute_platform.workflow.intake import ingest_from_queue
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
        run_key = f"intake:{chunk[0].first_event_id}-{chunk[-1].first_event_id}"
        requests.append(
            RunRequest(
                run_key=run_key,
                asset_selection=INTAKE_ASSETS,
                tags={
                    RANGE_START: chunk[0].case_id,
                    RANGE_END: chunk[-1].case_id,
                    "dispute_platform/step": "intake",
                    BATCH_TAG: run_key,
                },  # fmt: skip
            )
        )
    for dispute in new:
        if dispute.case_id in existing:
            run_key = f"intake:{dispute.first_event_id}"
            requests.append(
                RunRequest(
                    run_key=run_key,
                    asset_selection=INTAKE_ASSETS,
                    partition_key=dispute.case_id,
                    tags={"dispute_platform/step": "intake", BATCH_TAG: run_key},
                )
            )
    return requests


def intake_batches(new: list[repo.NewDispute], requests: list[RunRequest]) -> dict[str, list[str]]:
    """batch (run key) -> its case ids in partition order, for `run_disputes`."""
    order = [d.case_id for d in new]
    out: dict[str, list[str]] = {}
    for request in requests:
        if request.partition_key:
            out[request.tags[BATCH_TAG]] = [request.partition_key]
        else:
            start, end = order.index(request.tags[RANGE_START]), order.index(request.tags[RANGE_END])
            out[request.tags[BATCH_TAG]] = order[start : end + 1]
    return out


def receive_disputes(
    context: SensorEvaluationContext, sqs: SQSResource, postgres: PostgresResource, settings: Settings
) -> SensorResult | SkipReason:
    """One tick of `sqs_dispute_sensor`."""
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
    requests = intake_run_requests(new, existing, settings.disputes_per_run)
    # Written before Dagster sees the requests; a repeated tick writes the same rows (same run keys).
    appended = [d for d in new if d.case_id not in existing]
    by_batch = intake_batches(appended, [r for r in requests if not r.partition_key])
    by_batch |= {r.tags[BATCH_TAG]: [r.partition_key] for r in requests if r.partition_key}

    def record(cur) -> None:
        for batch, case_ids in by_batch.items():
            batches.record_batch(cur, batch, case_ids)

    db.transact(record)
    return SensorResult(
        dynamic_partitions_requests=[disputes_partitions.build_add_request([k for k in keys if k not in existing] + restored)],
        run_requests=requests,
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


def review_batches(decided: list[dict], positions: dict[str, int], most: int, max_gap: int = 0) -> list[list[dict]]:
    """The decisions cut into batches: disputes that are near each other in the partition set (at
    most `max_gap` other keys between two of them) share a batch of at most `most`; a dispute not
    in the set (or with no decided dispute near it) is a batch of its own. Each batch in partition
    order; a batch's run is a range from its first to its last dispute, and acts on its own only."""
    placed = sorted((d for d in decided if d["case_id"] in positions), key=lambda d: positions[d["case_id"]])
    out: list[list[dict]] = []
    for d in placed:
        last = out[-1][-1] if out else None
        near = last is not None and positions[d["case_id"]] - positions[last["case_id"]] - 1 <= max_gap
        if near and len(out[-1]) < most:
            out[-1].append(d)
        else:
            out.append([d])
    out += [[d] for d in decided if d["case_id"] not in positions]
    return out


def batch_key(batch: list[dict]) -> str:
    """Named after its first (and last) decision: a decision is carried by one batch, so a batch's
    key is seen once and Dagster drops a request repeated on a later tick."""
    first, last = batch[0], batch[-1]
    if len(batch) == 1:
        return f"review:{first['case_id']}:{first['decision_id']}"
    return f"review:{first['case_id']}:{first['decision_id']}..{last['case_id']}:{last['decision_id']}+{len(batch)}"


def review_run_request(batch: str, case_ids: list[str]) -> RunRequest:
    tags = {"dispute_platform/step": "review", BATCH_TAG: batch}
    if len(case_ids) == 1:
        return RunRequest(run_key=batch, partition_key=case_ids[0], asset_selection=REVIEW_ASSETS, tags=tags)
    return RunRequest(
        run_key=batch, asset_selection=REVIEW_ASSETS, tags=tags | {RANGE_START: case_ids[0], RANGE_END: case_ids[-1]}
    )


def review_run_requests(db, instance, decided: list[dict], most: int, max_gap: int = 0) -> list[RunRequest]:
    """Runs for the decided disputes: decisions no batch carries yet are cut into new batches
    (written to `run_disputes` first), then every batch holding a decided dispute is asked for,
    under its own run key (Dagster starts each once, so asking again on a later tick is harmless,
    and a tick whose answer was lost is made good by the next)."""
    pairs = [(d["case_id"], d["decision_id"]) for d in decided]
    claimed = db.transact(lambda cur: batches.claimed_decisions(cur, pairs))
    fresh = [d for d in decided if d["decision_id"] not in claimed]
    new_batches: dict[str, list[dict]] = {}
    if fresh:
        positions: dict[str, int] = {}
        if most > 1 and len(fresh) > 1:
            # One listing of the partition set per tick with decisions to place.
            positions = {k: i for i, k in enumerate(instance.get_dynamic_partitions(disputes_partitions.name))}
        new_batches = {batch_key(b): b for b in review_batches(fresh, positions, most, max_gap)}

        def record(cur) -> None:
            for key, batch in new_batches.items():
                batches.record_batch(cur, key, [d["case_id"] for d in batch], [d["decision_id"] for d in batch])

        db.transact(record)
        claimed = db.transact(lambda cur: batches.claimed_decisions(cur, pairs))
    wanted = sorted({claimed[d["decision_id"]] for d in decided if d["decision_id"] in claimed})
    members = db.transact(lambda cur: batches.batch_members(cur, wanted))
    return [review_run_request(batch, members[batch]) for batch in wanted]


def start_decided_reviews(
    context: SensorEvaluationContext, postgres: PostgresResource, sqs: SQSResource, email: EmailSender, settings: Settings
) -> SensorResult | SkipReason:
    """One tick of `review_decision_sensor`."""
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
    return SensorResult(
        run_requests=review_run_requests(db, context.instance, decided, settings.review_batch_size, settings.review_range_max_gap)
    )


def build_sensors(settings: Settings) -> list[SensorDefinition]:
    """The two dispute sensors, their intervals and every value their ticks use from `settings`."""

    @sensor(
        name="sqs_dispute_sensor",
        minimum_interval_seconds=settings.sqs_sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=INTAKE_ASSETS,
        description="Receives dispute events from SQS in batches of 10 (several receives in flight), stores them (bad "
        "bodies become rejected_events rows), deletes the messages, adds a partition per new dispute and starts intake "
        "runs.",
    )
    def sqs_dispute_sensor(context: SensorEvaluationContext, sqs: SQSResource, postgres: PostgresResource):
        return receive_disputes(context, sqs, postgres, settings)

    @sensor(
        name="review_decision_sensor",
        minimum_interval_seconds=settings.review_sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        asset_selection=REVIEW_ASSETS,
        description="Finds, by their state in Postgres, disputes whose current proposal has a final decision not yet "
        "carried out, and starts review_decision -> executed_resolution -> resolution_embedding for them (decided "
        "disputes that are near each other in the partition set share a run, up to REVIEW_BATCH_SIZE); escalates "
        "reviews pending longer than the SLA.",
    )
    def review_decision_sensor(
        context: SensorEvaluationContext, postgres: PostgresResource, sqs: SQSResource, email: ResourceParam[EmailSender]
    ):
        return start_decided_reviews(context, postgres, sqs, email, settings)

    return [sqs_dispute_sensor, review_decision_sensor]
