"""The six dispute assets, one dynamic partition per dispute (key = case id).

Assets are thin: they read and write Postgres through `store.repo`, call the workflow functions,
and describe what happened as per-partition metadata. A run carries many disputes at once (a
partition range with a single-run backfill policy), so every asset loops over the run's disputes
(`run_keys.run_disputes`: the range's keys the run was requested for, listed once per run);
nothing goes through an IO manager. A key inside the range that the run was not requested for is
left untouched and says so. Most assets return a `MaterializeResult` (every dispute of the run is
materialized, with its own metadata). `ai_proposal` instead yields one `AssetMaterialization` per
dispute it proposed for and an `AssetObservation` "skipped: <reason>" for the others (invalid,
failed upstream, already decided), so a dispute stopped by validation is not shown as a green
proposal; it also evaluates the four cap checks (checks.py) once for the run and reports them per
dispute.

Steps are retried (TRANSIENT_RETRY) and a retry redoes only what is unfinished: each asset skips
the disputes whose state in Postgres is already past its stage.
"""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from dagster import (
    AssetCheckEvaluation,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetsDefinition,
    BackfillPolicy,
    Backoff,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
    ResourceParam,
    RetryPolicy,
    asset,
)
from pydantic import Field

from dispute_platform.checks import CAP_CHECK_SPECS, cap_check_evaluations, latest_materializations
from dispute_platform.domain.models import DisputeEvent, EnrichedContext
from dispute_platform.domain.states import (
    ENRICHMENT_PENDING,
    INTAKE_MAY_RUN,
    PROPOSAL_MAY_REGENERATE,
    PROPOSAL_MAY_RUN,
    Status,
)
from dispute_platform.partitions import disputes_partitions
from dispute_platform.resources.email import EmailSender
from dispute_platform.resources.limits import Limits
from dispute_platform.resources.llm import ProposalProvider
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.providers import BillingProvider, CRMProvider, PaymentsProvider
from dispute_platform.resources.sqs import SQSResource
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.run_keys import add_metadata, report_foreign, run_disputes
from dispute_platform.settings import Settings, get_settings
from dispute_platform.store import repo
from dispute_platform.store.proposals import save_proposal
from dispute_platform.store.transitions import transition
from dispute_platform.workflow.auto_lane import consider_auto_approval
from dispute_platform.workflow.calibration import load_calibration
from dispute_platform.workflow.caps import evaluate_stored
from dispute_platform.workflow.enrich import CaseMissing, Providers, enrich_event
from dispute_platform.workflow.notify import notify_reviewers
from dispute_platform.workflow.propose import ProposalOutcome, propose, query_text

GROUP = "disputes"
AI_PROPOSAL = AssetKey("ai_proposal")
BATCHED = BackfillPolicy.single_run()
# Source systems and model APIs fail transiently; steps are idempotent, so retrying is safe.
TRANSIENT_RETRY = RetryPolicy(max_retries=3, delay=get_settings().step_retry_delay_seconds, backoff=Backoff.EXPONENTIAL)


def _money(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


# --- raw_case ------------------------------------------------------------------------------


@asset(
    partitions_def=disputes_partitions,
    backfill_policy=BATCHED,
    group_name=GROUP,
    kinds={"postgres", "sqs"},
    description="The dispute as it arrived on SQS (stored by the sensor before the message was deleted).",
)
def raw_case(context: AssetExecutionContext, postgres: PostgresResource) -> MaterializeResult:
    mine = run_disputes(context, postgres.db)
    report_foreign(context, mine)
    keys = list(mine.keys)

    def load(cur) -> tuple[dict[str, dict], dict[str, dict]]:
        events = repo.events_for(cur, keys)
        states = repo.workflow_states(cur, keys)
        for key in events:
            if key in states and states[key]["status"] in INTAKE_MAY_RUN:
                if transition(cur, key, Status.RUNNING, "raw_case", run_id=context.run_id):
                    repo.audit(cur, key, "raw_case", "materialized", run_id=context.run_id)
        return events, states

    events, states = postgres.db.transact(load)
    for key in keys:
        row = events.get(key)
        if row is None:
            add_metadata(context, mine, key, {"status": "no event stored for this case id"})
            continue
        body = row["body"]
        add_metadata(
            context,
            mine,
            key,
            {
                "event_id": row["event_id"],
                "customer_id": body.get("customer_id") or "-",
                "dispute_type (event)": body.get("dispute_type") or "-",
                "amount (event)": body.get("amount") if isinstance(body.get("amount"), int | float) else None,
                "received_at": row["received_at"].isoformat(),
                "status": states.get(key, {}).get("status", "unknown"),
            },
        )
    missing = [k for k in keys if k not in events]
    if missing:
        context.log.warning(f"{len(missing)} partition(s) have no stored event: {missing[:10]}")
    # Batch figures go to the run's log: a partition's metadata is that dispute's alone.
    context.log.info(f"raw_case batch: {len(keys)} disputes, {len(missing)} without a stored event")
    return MaterializeResult()


# --- enriched_context ----------------------------------------------------------------------


def _context_metadata(enriched: EnrichedContext) -> dict:
    verdict, account = enriched.verdict, enriched.crm.account
    return {
        "customer": f"{account.name} ({account.customer_id})",
        "segment": account.segment.value,
        "dispute_type": verdict.dispute_type,
        "disputed_amount": _money(verdict.disputed_amount),
        "billed_amount": _money(verdict.billed_amount),
        "refundable_amount": _money(verdict.refundable_amount),
        "days_since_charge": verdict.days_since_charge,
        "charge": verdict.disputed_charge_id or "-",
        "valid": verdict.valid,
        "verdict": verdict.summary,
    }


class EnrichConfig(Config):
    refetch: bool = Field(
        default=False,
        description="Fetch again for disputes already enriched or found invalid (the default fetches only disputes not "
        "yet past this step, so a retried step redoes only what its failed attempt did not finish).",
    )


@asset(
    partitions_def=disputes_partitions,
    backfill_policy=BATCHED,
    group_name=GROUP,
    deps=[raw_case],
    kinds={"postgres"},
    retry_policy=TRANSIENT_RETRY,
    description="Case and account (CRM), subscription and invoices (billing), charges, refunds and "
    "disputes (payments), fetched concurrently, with the validation verdict. Invalid disputes stop here.",
)
def enriched_context(
    context: AssetExecutionContext,
    config: EnrichConfig,
    postgres: PostgresResource,
    crm: ResourceParam[CRMProvider],
    billing: ResourceParam[BillingProvider],
    payments: ResourceParam[PaymentsProvider],
) -> MaterializeResult:
    db = postgres.db
    mine = run_disputes(context, db)
    report_foreign(context, mine)
    keys = list(mine.keys)
    events, states = db.transact(lambda cur: (repo.events_for(cur, keys), repo.workflow_states(cur, keys)))
    # By the dispute's state: enriched or invalid already (an earlier attempt of this step, or an
    # earlier run) is done unless `refetch` asks for it again.
    allowed = INTAKE_MAY_RUN if config.refetch else ENRICHMENT_PENDING
    todo = [k for k in keys if k in events and states.get(k, {}).get("status") in allowed]
    settings = get_settings()
    providers = Providers(crm=crm, billing=billing, payments=payments)
    failures: dict[str, str] = {}
    counts = {"valid": 0, "invalid": 0, "failed": 0, "skipped": len(keys) - len(todo)}

    def one(key: str) -> tuple[str, EnrichedContext | CaseMissing | Exception]:
        try:
            event = DisputeEvent.model_validate(events[key]["body"])
            return key, enrich_event(event, providers, fetch_pool)
        except Exception as exc:  # noqa: BLE001 - recorded per dispute, re-raised below
            return key, exc

    # Threads and Postgres connections are sized together (settings.postgres_connections).
    with (
        ThreadPoolExecutor(max_workers=settings.enrich_fetches_in_flight) as fetch_pool,
        ThreadPoolExecutor(max_workers=settings.enrich_disputes_in_flight) as dispute_pool,
    ):
        results = list(dispute_pool.map(one, todo))

    for key, result in results:
        if isinstance(result, Exception):
            reason = f"{result.__class__.__name__}: {result}"
            failures[key] = reason
            counts["failed"] += 1
            db.transact(lambda cur, key=key, reason=reason: (
                transition(cur, key, Status.FETCH_FAILED, "enriched_context", reason, run_id=context.run_id)
                and repo.audit(cur, key, "enriched_context", "fetch_failed", {"error": reason}, run_id=context.run_id),
            ))  # fmt: skip
            add_metadata(context, mine, key, {"status": "fetch failed", "error": reason})
            continue
        if isinstance(result, CaseMissing):
            counts["invalid"] += 1
            db.transact(lambda cur, key=key, result=result: (
                transition(cur, key, Status.INVALID, "enriched_context", result.reason, run_id=context.run_id,
                           validation={"valid": False, "issues": [{"code": "case_not_found", "message": result.reason}]})
                and repo.audit(cur, key, "enriched_context", "invalid", {"reason": result.reason}, run_id=context.run_id),
            ))  # fmt: skip
            add_metadata(context, mine, key, {"valid": False, "verdict": result.reason})
            continue
        enriched = result
        verdict = enriched.verdict
        status = Status.ENRICHED if verdict.valid else Status.INVALID
        counts["valid" if verdict.valid else "invalid"] += 1
        validation = verdict.model_dump(mode="json") | {"valid": verdict.valid}
        db.transact(lambda cur, key=key, enriched=enriched, status=status, validation=validation: (
            transition(
                cur, key, status, "enriched_context", None if enriched.verdict.valid else enriched.verdict.summary,
                run_id=context.run_id,
                customer_id=enriched.crm.case.customer_id,
                dispute_type=enriched.crm.case.dispute_type,
                segment=enriched.crm.account.segment.value,
                disputed_amount=enriched.crm.case.amount,
                currency=enriched.crm.case.currency,
                crm_data=enriched.crm.model_dump(mode="json") | {"event": enriched.event.model_dump(mode="json")},
                billing_data=enriched.billing.model_dump(mode="json"),
                payment_data=enriched.payments.model_dump(mode="json")
                | {"relevant_charge_ids": [c.charge_id for c in enriched.relevant_charges]},
                validation=validation,
            )
            and repo.audit(cur, key, "enriched_context", "valid" if enriched.verdict.valid else "invalid",
                       {"issues": validation["issues"]}, run_id=context.run_id),
        ))  # fmt: skip
        add_metadata(context, mine, key, _context_metadata(enriched))

    for key in keys:
        if key not in todo:
            status = states.get(key, {}).get("status", "no workflow state")
            add_metadata(context, mine, key, {"status": f"not enriched again: dispute is {status}"})
    if failures:
        raise Failure(
            description=f"{len(failures)} of {len(todo)} disputes could not be fetched; they are marked fetch_failed "
            "and the step will be retried",
            metadata={"failures": MetadataValue.json(failures)},
        )
    context.log.info("enriched_context batch: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    return MaterializeResult()


# --- ai_proposal ---------------------------------------------------------------------------


class ProposalConfig(Config):
    regenerate: bool = Field(
        default=False,
        description="Ask again for disputes that already have an undecided proposal (a new version supersedes it).",
    )


def load_context(state: dict) -> EnrichedContext:
    """Rebuild the enriched context from what enriched_context stored (no second fetch)."""
    from dispute_platform.domain.context import enrich
    from dispute_platform.domain.models import BillingRecord, CrmRecord, PaymentRecord

    crm_data = dict(state["crm_data"])
    event = DisputeEvent.model_validate(crm_data.pop("event"))
    payment_data = dict(state["payment_data"])
    payment_data.pop("relevant_charge_ids", None)
    return enrich(
        event,
        CrmRecord.model_validate(crm_data),
        BillingRecord.model_validate(state["billing_data"]),
        PaymentRecord.model_validate(payment_data),
    )


def proposal_markdown(outcome: ProposalOutcome, version: int) -> str:
    p = outcome.proposal
    policies = "\n".join(f"- **{h.citation}** {h.title} (relevance {h.score:.2f})" for h in outcome.policies) or "- none"
    cases = (
        "\n".join(
            f"- **{c.case_id}** {c.dispute_type}: {c.action} {c.resolved_amount or ''} (similarity {c.score:.2f})"
            for c in outcome.cases
        )
        or "- none"
    )
    return (
        f"### v{version}: {p.action.value} {p.amount} {p.currency} (confidence {p.confidence:.2f}"
        f"{'' if p.calibration else ', uncalibrated'}; basis {p.basis})\n\n"
        f"{p.reasoning}\n\n**Cited:** {', '.join(p.cited_policies) or 'none'}\n\n"
        f"**Policies retrieved**\n{policies}\n\n**Similar cases**\n{cases}\n\n"
        f"**Flags:** {', '.join(p.flags) or 'none'}"
    )


def _skipped(key: str, reason: str) -> AssetObservation:
    """What a dispute without a proposal in this run shows on its partition page: no
    materialization (the partition stays as it was, not a green "proposed"), and why."""
    return AssetObservation(
        asset_key=AI_PROPOSAL, partition=key, description=f"skipped: {reason}", metadata={"status": "skipped", "reason": reason}
    )


@asset(
    partitions_def=disputes_partitions,
    backfill_policy=BATCHED,
    group_name=GROUP,
    deps=[enriched_context],
    kinds={"openai", "chroma", "postgres"},
    pool="llm",
    retry_policy=TRANSIENT_RETRY,
    # Only the disputes that got a proposal are materialized (one AssetMaterialization each).
    output_required=False,
    check_specs=CAP_CHECK_SPECS,
    description="A resolution proposal grounded in the top policies and similar past cases, within the "
    "token and cost caps, saved as pending review (reviewers are told by e-mail and the review queue). "
    "Disputes it makes no proposal for (invalid, failed upstream, already decided) are not materialized: "
    "their partition shows an observation 'skipped: <reason>'.",
)
def ai_proposal(
    context: AssetExecutionContext,
    config: ProposalConfig,
    postgres: PostgresResource,
    vectors: VectorStoreResource,
    proposer: ResourceParam[ProposalProvider],
    limits: ResourceParam[Limits],
    email: ResourceParam[EmailSender],
    sqs: SQSResource,
) -> Iterator[AssetMaterialization | AssetObservation | AssetCheckEvaluation | Output]:
    db = postgres.db
    mine = run_disputes(context, db)
    if mine.foreign:  # this asset yields per-dispute events: a key that is not this run's gets none
        context.log.warning(f"{len(mine.foreign)} partition(s) in this run's range are not its disputes; left untouched: "
                            f"{list(mine.foreign[:10])}")  # fmt: skip
    keys = list(mine.keys)
    states, latest = db.transact(lambda cur: (repo.workflow_states(cur, keys), repo.latest_proposals(cur, keys)))
    allowed = PROPOSAL_MAY_REGENERATE if config.regenerate else PROPOSAL_MAY_RUN
    # A proposal this run already saved (an earlier attempt of this step) is not asked for again.
    todo = [k for k in keys if states.get(k, {}).get("status") in allowed
            and (latest.get(k) or {}).get("dagster_run_id") != context.run_id]  # fmt: skip
    proposal_limits = limits.proposal_limits()
    settings = get_settings()
    contexts = {k: load_context(states[k]) for k in todo}
    calibration = load_calibration(db) if todo else None  # the newest fit (proposal_calibration asset)
    # One encoder call for the whole batch: far cheaper than one per dispute.
    vectors_by_key = dict(zip(todo, vectors.embedder.encode([query_text(contexts[k]) for k in todo]), strict=True))
    totals = {
        "proposed": 0,
        "blocked": 0,
        "refused": 0,
        "auto_approved": 0,
        "skipped": len(keys) - len(todo),
        "cost_usd": Decimal("0"),
    }

    def one(key: str) -> tuple[str, ProposalOutcome | Exception, float]:
        started = time.perf_counter()
        try:
            spent = Decimal(states[key]["llm_cost"] or 0)
            outcome = propose(contexts[key], vectors, proposer, db, proposal_limits, vectors_by_key[key], spent,
                              calibration=calibration)  # fmt: skip
            return key, outcome, started
        except Exception as exc:  # noqa: BLE001 - recorded per dispute, re-raised below
            return key, exc, started

    # Paid providers wait on the network; the rules engine does not.
    workers = settings.proposals_in_flight if proposer.cacheable else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, todo))

    failures: dict[str, str] = {}
    skipped_why_failed: dict[str, str] = {}
    for key, outcome, started in results:
        if isinstance(outcome, Exception):
            reason = f"{outcome.__class__.__name__}: {outcome}"
            failures[key] = reason
            skipped_why_failed[key] = f"proposal failed: {reason}"
            db.transact(lambda cur, key=key, reason=reason: (
                transition(cur, key, Status.PROPOSAL_FAILED, "ai_proposal", reason, allowed_from=allowed,
                           run_id=context.run_id)
                and repo.audit(cur, key, "ai_proposal", "failed", {"error": reason}, run_id=context.run_id),
            ))  # fmt: skip
            yield AssetObservation(
                asset_key=AI_PROPOSAL, partition=key, description=f"proposal failed: {reason}",
                metadata={"status": "proposal_failed", "error": reason},
            )  # fmt: skip
            continue
        proposal = outcome.proposal
        blocked = not outcome.within_caps
        # A model that gave no usable answer is its own state (a person decides, or asks again).
        status = (
            Status.BLOCKED if blocked else Status.MODEL_FAILED if "model_failure" in proposal.flags else Status.PENDING_REVIEW
        )
        failed_caps = [c.name for c in outcome.caps if not c.passed]
        document = proposal.model_dump(mode="json")

        def save(cur, key=key, document=document, status=status, proposal=proposal, failed_caps=failed_caps) -> int | None:
            reason = f"over cap: {', '.join(failed_caps)}" if failed_caps else None
            if reason is None and "model_failure" in proposal.flags:
                reason = proposal.reasoning[:500]  # the model failed: the reviewer decides, and sees why
            # The model was paid whether or not the proposal can still be saved.
            repo.add_cost(cur, key, f"llm:{proposal.model}", proposal.cost_usd, llm=True)
            version = save_proposal(cur, key, document, status=status, allowed_from=allowed, reason=reason,
                                    run_id=context.run_id)  # fmt: skip
            if version is None:  # a decision (or more) happened since this batch read the dispute
                return None
            repo.audit(cur, key, "ai_proposal", "blocked" if failed_caps else "proposed",
                       {"version": version, "action": proposal.action.value, "amount": str(proposal.amount),
                        "failed_caps": failed_caps}, run_id=context.run_id)  # fmt: skip
            return version

        version = db.transact(save)
        if version is None:
            totals["refused"] += 1
            context.log.warning(f"{key}: not saved, the dispute moved on while its proposal was being made")
            yield _skipped(key, "proposal not saved: the dispute moved on while it was being made (see its audit trail)")
            continue
        if blocked:
            totals["blocked"] += 1
            context.log.warning(f"{key}: proposal v{version} is over a cap ({failed_caps}); it can not be executed")
        lane_note = "blocked by a cap"
        if not blocked:
            lane = consider_auto_approval(db, key, version, proposal, outcome.caps, limits, context.run_id)
            lane_note = ("auto-approved: " if lane.eligible else "for a reviewer: ") + lane.reason
            if lane.eligible:
                totals["auto_approved"] += 1  # executed by the review sensor, like any decision
            else:
                notify_reviewers(db, email, sqs, settings, contexts[key], outcome, version, run_id=context.run_id)
        totals["proposed"] += 1
        totals["cost_usd"] += proposal.cost_usd
        yield AssetMaterialization(
            asset_key=AI_PROPOSAL,
            partition=key,
            description=f"v{version}: {proposal.action.value} {proposal.amount} {proposal.currency} ({status.value})",
            metadata={
                "status": status.value,
                "version": version,
                "auto_approval": lane_note,
                "action": proposal.action.value,
                "amount": _money(proposal.amount),
                "confidence": proposal.confidence,
                "provider": proposal.provider,
                "model": proposal.model,
                "latency_ms": int((time.perf_counter() - started) * 1000),
                "input_tokens": proposal.input_tokens,
                "output_tokens": proposal.output_tokens,
                "cost_usd": float(proposal.cost_usd),
                "cache_hit": proposal.cache_hit,
                "flags": ", ".join(proposal.flags) or "none",
                "summary": MetadataValue.md(proposal_markdown(outcome, version)),
            },
        )
    skipped_why: dict[str, str] = dict(skipped_why_failed)
    for key in keys:
        if key not in todo:
            state = states.get(key, {})
            status = state.get("status", "no workflow state")
            skipped_why[key] = f"dispute is {status}" + (f" ({state['status_reason']})" if state.get("status_reason") else "")
            yield _skipped(key, skipped_why[key])
    # The cap checks: one evaluation for the whole run (every dispute of the range that has a
    # proposal, this run's or an earlier one), recorded per dispute. A failing dispute is blocked
    # in Postgres; the run goes on for the others.
    checked = evaluate_stored(db, keys, limits.caps, context.run_id)
    unchecked = {k: skipped_why.get(k, "no proposal on record") for k in keys if k not in checked}
    targets = latest_materializations(context.instance, list(checked))
    yield from cap_check_evaluations(checked, unchecked, set(context.selected_asset_check_keys), targets)
    over = sorted(k for k, c in checked.items() if not c.passed)
    if over:
        context.log.warning(f"cap checks: {len(over)} of {len(checked)} disputes over a cap, blocked: {over[:20]}")
    for check_key in context.selected_asset_check_keys:
        yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key))
    if failures:
        raise Failure(
            description=f"{len(failures)} of {len(todo)} proposals failed; marked proposal_failed, the step retries",
            metadata={"failures": MetadataValue.json(failures)},
        )
    context.log.info(
        f"ai_proposal batch: {totals['proposed']} proposed ({totals['auto_approved']} auto-approved), "
        f"{totals['blocked']} blocked by a cap, {totals['refused']} not saved (moved on), {totals['skipped']} skipped; "
        f"{len(checked)} cap-checked, {len(over)} over a cap; LLM cost ${totals['cost_usd']}"
    )


# --- review_decision -----------------------------------------------------------------------


class ModifiedResolutionConfig(Config):
    action: str
    amount: float = 0.0
    reason: str = ""


class ReviewDecisionConfig(Config):
    """Leave `decision` empty to take the decision recorded in Postgres (the endpoint's way).
    To decide here, in the launchpad, paste a decision ticket: the endpoint
    (POST /human-review/tickets) or the review desk issues one to a signed-in reviewer for one
    dispute's current proposal; it is valid for minutes and works once. Dagster keeps run config
    in plain text, so a name or a reusable token here would prove nothing."""

    decision: str | None = Field(default=None, description="approved | rejected | modified")
    ticket: str | None = Field(default=None, description="Single-use decision ticket (POST /human-review/tickets).")
    reviewer: str | None = Field(default=None, description="Not accepted: the ticket says who decides.")
    comments: str = ""
    proposal_version: int | None = Field(default=None, description="Defaults to the ticket's proposal version.")
    modified_resolution: ModifiedResolutionConfig | None = None


def _launchpad_decision(context: AssetExecutionContext, config: ReviewDecisionConfig, db, limits: Limits, key: str) -> None:
    from dispute_platform.domain.models import ModifiedResolution
    from dispute_platform.domain.review import DecisionRefused
    from dispute_platform.workflow.review import decide_with_ticket

    def refuse(reason: str) -> Failure:
        return Failure(description=f"launchpad decision refused for {key}: {reason}", allow_retries=False)

    if config.reviewer:
        raise refuse("`reviewer` is not accepted: paste a decision ticket (POST /human-review/tickets) in `ticket`")
    if not config.ticket:
        raise refuse("a launchpad decision needs `ticket`, issued to a signed-in reviewer by the endpoint or the desk")
    modified = None
    if config.modified_resolution:
        try:
            modified = ModifiedResolution(
                action=config.modified_resolution.action,
                amount=Decimal(str(config.modified_resolution.amount)),
                reason=config.modified_resolution.reason,
            )
        except ValueError as exc:
            raise refuse(f"modified_resolution does not hold: {exc}") from exc
    try:
        recorded = decide_with_ticket(
            db, ticket=config.ticket, case_id=key, decision=config.decision or "", comments=config.comments,
            proposal_version=config.proposal_version, modified=modified, limits=limits, run_id=context.run_id,
        )  # fmt: skip
    except DecisionRefused as refused:
        raise refuse(f"({refused.status_code}) {refused.reason}") from refused
    context.log.info(f"{key}: {config.decision} recorded for {recorded.reviewer.name} (ticket)")


@asset(
    partitions_def=disputes_partitions,
    backfill_policy=BATCHED,
    group_name=GROUP,
    deps=[ai_proposal],
    kinds={"postgres"},
    description="The human reviewer's decision on the proposal (from the decision endpoint or the desk, or given "
    "here in the launchpad with a single-use decision ticket), with who decided and what changed from the proposal.",
)
def review_decision(
    context: AssetExecutionContext, config: ReviewDecisionConfig, postgres: PostgresResource, limits: ResourceParam[Limits]
) -> MaterializeResult:
    db = postgres.db
    mine = run_disputes(context, db)
    report_foreign(context, mine)
    keys = list(mine.keys)
    if config.decision is not None or config.ticket is not None or config.reviewer is not None:
        if len(keys) != 1:
            raise Failure(description="a launchpad decision is for one dispute: select a single partition", allow_retries=False)
        _launchpad_decision(context, config, db, limits, keys[0])
    states = db.transact(lambda cur: repo.workflow_states(cur, keys))
    for key in keys:
        state = states.get(key, {})
        review = state.get("human_review_data") or {}
        add_metadata(
            context,
            mine,
            key,
            {
                "status": state.get("status", "unknown"),
                "decision": review.get("decision", "none yet"),
                "reviewers": ", ".join(review.get("reviewers", [])) or "-",
                "effective_action": review.get("effective_action", "-"),
                "effective_amount": float(review["effective_amount"]) if review.get("effective_amount") else None,
                "final": bool(review.get("final")),
                "changed_from_proposal": MetadataValue.json(review.get("changed_from_proposal") or {}),
                "comments": review.get("comments", ""),
            },
        )
    return MaterializeResult()


# --- executed_resolution -------------------------------------------------------------------


@asset(
    partitions_def=disputes_partitions,
    backfill_policy=BATCHED,
    group_name=GROUP,
    deps=[review_decision],
    kinds={"stripe", "postgres"},
    retry_policy=TRANSIENT_RETRY,
    description="The approved refund (payments) or credit (billing) with an idempotency key derived from "
    "the dispute and the decision, or the recorded no-op of a rejection; the customer is notified.",
)
def executed_resolution(
    context: AssetExecutionContext,
    postgres: PostgresResource,
    payments: ResourceParam[PaymentsProvider],
    billing: ResourceParam[BillingProvider],
    crm: ResourceParam[CRMProvider],
    email: ResourceParam[EmailSender],
    limits: ResourceParam[Limits],
) -> MaterializeResult:
    from dispute_platform.resources.providers import RefundRefused
    from dispute_platform.workflow.execute import ExecutionRefused, ExecutionResult, execute_decision

    mine = run_disputes(context, postgres.db)
    report_foreign(context, mine)
    errors: dict[str, str] = {}
    refused_by_provider: dict[str, str] = {}
    permanent = True

    def attempt(key: str) -> ExecutionResult | Exception:
        try:
            return execute_decision(
                postgres.db, key, payments=payments, billing=billing, crm=crm, email=email, run_id=context.run_id,
                caps=limits.caps,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - sorted out below, in the step's own thread
            return exc

    # Disputes are executed side by side (EXECUTIONS_IN_FLIGHT): each one's money moves under its
    # own guarded transitions and provider-side locks, whichever thread carries it; a review batch
    # of hundreds would otherwise wait on one provider call at a time.
    workers = max(1, min(get_settings().executions_in_flight, len(mine.keys)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="execute") as pool:
        outcomes = list(zip(mine.keys, pool.map(attempt, mine.keys), strict=True))
    for key, result in outcomes:
        if isinstance(result, ExecutionRefused):
            add_metadata(context, mine, key, {"status": "refused", "reason": str(result)})
            context.log.warning(f"{key}: {result}")
            continue
        if isinstance(result, RefundRefused):
            refused_by_provider[key] = f"refused by the provider: {result}"
            add_metadata(context, mine, key, {"status": "execution_failed", "error": refused_by_provider[key]})
            context.log.error(f"{key}: {refused_by_provider[key]}")
            continue
        if isinstance(result, Exception):  # recorded by execute_decision; retried below
            errors[key] = f"{result.__class__.__name__}: {result}"
            permanent = False
            add_metadata(context, mine, key, {"status": "execution_failed", "error": errors[key]})
            continue
        add_metadata(
            context,
            mine,
            key,
            {
                "status": result.status,
                "action": result.action,
                "amount": _money(result.amount),
                "reference": result.reference or "-",
                "replayed": result.replayed,
                "detail": result.detail or "-",
            },
        )
    # A refusal the provider stated is final for that dispute (execution_failed, with the reason); in
    # a run of one dispute it fails the run, in a batch it must not keep the others from being
    # remembered. Any other error fails the step, which retries: done disputes replay as already_done.
    if refused_by_provider and (errors or len(mine.keys) == 1):
        errors |= refused_by_provider
    elif refused_by_provider:
        context.log.error(f"{len(refused_by_provider)} of {len(mine.keys)} execution(s) refused by the provider: "
                          f"{sorted(refused_by_provider)}")  # fmt: skip
    if errors:
        permanent = permanent and all(k in refused_by_provider for k in errors)
        raise Failure(
            description=f"{len(errors)} execution(s) failed; each dispute is marked execution_failed with the error",
            metadata={"errors": MetadataValue.json(errors)},
            allow_retries=not permanent,
        )
    return MaterializeResult()


# --- resolution_embedding ------------------------------------------------------------------


@asset(
    partitions_def=disputes_partitions,
    backfill_policy=BATCHED,
    group_name=GROUP,
    deps=[executed_resolution],
    kinds={"chroma"},
    pool="chroma_writer",
    retry_policy=TRANSIENT_RETRY,
    description="The final resolution upserted into Chroma dispute_resolutions (one entry per case), so the "
    "next similar dispute finds it among its similar cases.",
)
def resolution_embedding(
    context: AssetExecutionContext, postgres: PostgresResource, vectors: VectorStoreResource
) -> MaterializeResult:
    from dispute_platform.workflow.remember import remember_resolutions

    mine = run_disputes(context, postgres.db)
    report_foreign(context, mine)
    keys = list(mine.keys)
    if mine.batch is not None:
        # A review batch: a dispute already remembered (an earlier attempt of this step) is done.
        states = postgres.db.transact(lambda cur: repo.workflow_states(cur, keys))
        done = [k for k in keys if states.get(k, {}).get("status") == Status.COMPLETED]
        for key in done:
            add_metadata(context, mine, key, {"status": "skipped", "reason": "already remembered"})
        keys = [k for k in keys if k not in done]
    for remembered in remember_resolutions(postgres.db, vectors, keys, context.run_id):  # one encoder call
        key = remembered.case_id
        if remembered.record is None:
            add_metadata(context, mine, key, {"status": "skipped", "reason": remembered.skipped})
            continue
        record = remembered.record
        add_metadata(
            context,
            mine,
            key,
            {
                "status": "embedded",
                "action": record.action,
                "resolved_amount": _money(record.resolved_amount),
                "outcome": record.outcome,
                "citations": ", ".join(record.citations) or "-",
                "embedding_model": vectors.embedder.identity,
                "document": MetadataValue.md(record.document()),
            },
        )
    return MaterializeResult()


def build_dispute_assets(settings: Settings) -> list[AssetsDefinition]:  # TEMPORARY shim until thin assets merge
    return [raw_case, enriched_context, ai_proposal, review_decision, executed_resolution, resolution_embedding]
