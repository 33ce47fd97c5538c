"""The six dispute assets, one dynamic partition per dispute (key = case id).

Assets are thin: each lists its run's disputes, calls one workflow function that does the step
for all of them and returns one typed outcome per dispute (`workflow/intake.start_cases`,
`enrich.enrich_batch`, `proposal_step.propose_batch`, `execute.execute_batch`,
`remember.remember_resolutions`), and maps each outcome to that dispute's metadata; the
workflow functions own the thread pools, state transitions, audit and cost rows and business
rules. A run carries many disputes at once (a partition range with a single-run backfill
policy): `run_keys.run_disputes` lists the range's keys the run was requested for, once per run;
nothing goes through an IO manager. A key inside the range that the run was not requested for is
left untouched and says so. Most assets return a `MaterializeResult` (every dispute of the run is
materialized, with its own metadata). `ai_proposal` instead yields one `AssetMaterialization` per
dispute it proposed for and an `AssetObservation` "skipped: <reason>" for the others (invalid,
failed upstream, already decided), so a dispute stopped by validation is not shown as a green
proposal; it also evaluates the four cap checks (checks.py) once for the run and reports them per
dispute. An asset raises `Failure` when outcomes failed.

Steps are retried (a RetryPolicy from STEP_RETRY_DELAY_SECONDS) and a retry redoes only what is unfinished: each workflow
function skips the disputes whose state in Postgres is already past its stage.
"""

from collections.abc import Iterator
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
from dispute_platform.partitions import disputes_partitions
from dispute_platform.resources.email import EmailSender
from dispute_platform.resources.limits import Limits
from dispute_platform.resources.llm import ProposalProvider
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.providers import BillingProvider, CRMProvider, PaymentsProvider
from dispute_platform.resources.sqs import SQSResource
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.run_keys import add_metadata, report_foreign, run_disputes
from dispute_platform.settings import Settings
from dispute_platform.store import repo
from dispute_platform.workflow.caps import evaluate_stored
from dispute_platform.workflow.enrich import Providers, enrich_batch
from dispute_platform.workflow.execute import ExecutionResult, execute_batch
from dispute_platform.workflow.intake import start_cases
from dispute_platform.workflow.proposal_step import ProposalStepOutcome, propose_batch
from dispute_platform.workflow.propose import ProposalOutcome

GROUP = "disputes"
AI_PROPOSAL = AssetKey("ai_proposal")
BATCHED = BackfillPolicy.single_run()
# What the six assets share: a partition per dispute, a run per batch of them, one group.
PER_DISPUTE = {"partitions_def": disputes_partitions, "backfill_policy": BATCHED, "group_name": GROUP}


def _money(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


# --- enriched_context ----------------------------------------------------------------------


# How the batch log line names each kind of outcome, in its order.
ENRICH_COUNTS = {"valid": "enriched", "invalid": "invalid", "failed": "fetch_failed", "skipped": "skipped"}


class EnrichConfig(Config):
    refetch: bool = Field(
        default=False,
        description="Fetch again for disputes already enriched or found invalid (the default fetches only disputes not "
        "yet past this step, so a retried step redoes only what its failed attempt did not finish).",
    )


# --- ai_proposal ---------------------------------------------------------------------------


class ProposalConfig(Config):
    regenerate: bool = Field(
        default=False,
        description="Ask again for disputes that already have an undecided proposal (a new version supersedes it).",
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


def _proposal_event(step: ProposalStepOutcome) -> AssetMaterialization | AssetObservation:
    """A saved proposal is materialized; a failed, refused or skipped dispute gets an observation."""
    key = step.case_id
    if step.result == "failed":
        return AssetObservation(
            asset_key=AI_PROPOSAL, partition=key, description=f"proposal failed: {step.error}",
            metadata={"status": "proposal_failed", "error": step.error},
        )  # fmt: skip
    if not step.saved or step.proposal is None or step.version is None or step.status is None:
        return _skipped(key, step.reason or "")
    outcome, version, status = step.proposal, step.version, step.status
    proposal = outcome.proposal
    return AssetMaterialization(
        asset_key=AI_PROPOSAL,
        partition=key,
        description=f"v{version}: {proposal.action.value} {proposal.amount} {proposal.currency} ({status.value})",
        metadata={
            "status": status.value,
            "version": version,
            "auto_approval": step.auto_approval,
            "action": proposal.action.value,
            "amount": _money(proposal.amount),
            "confidence": proposal.confidence,
            "provider": proposal.provider,
            "model": proposal.model,
            "latency_ms": step.latency_ms,
            "input_tokens": proposal.input_tokens,
            "output_tokens": proposal.output_tokens,
            "cost_usd": float(proposal.cost_usd),
            "cache_hit": proposal.cache_hit,
            "flags": ", ".join(proposal.flags) or "none",
            "summary": MetadataValue.md(proposal_markdown(outcome, version)),
        },
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


# --- executed_resolution -------------------------------------------------------------------


def _execution_metadata(result: ExecutionResult) -> dict:
    return {
        "status": result.status,
        "action": result.action,
        "amount": _money(result.amount),
        "reference": result.reference or "-",
        "replayed": result.replayed,
        "detail": result.detail or "-",
    }


# --- the assets ---------------------------------------------------------------------------


def build_dispute_assets(settings: Settings) -> list[AssetsDefinition]:
    """The six dispute assets, built from `settings`: their retry delay (STEP_RETRY_DELAY_SECONDS)
    and the in-flight counts their workflow functions use are closed over, not read at import."""
    # Source systems and model APIs fail transiently; steps are idempotent, so retrying is safe.
    retry = RetryPolicy(max_retries=3, delay=settings.step_retry_delay_seconds, backoff=Backoff.EXPONENTIAL)

    @asset(
        **PER_DISPUTE,
        kinds={"postgres", "sqs"},
        description="The dispute as it arrived on SQS (stored by the sensor before the message was deleted).",
    )
    def raw_case(context: AssetExecutionContext, postgres: PostgresResource) -> MaterializeResult:
        mine = run_disputes(context, postgres.db)
        report_foreign(context, mine)
        outcomes = start_cases(postgres.db, list(mine.keys), context.run_id)
        for outcome in outcomes:
            add_metadata(context, mine, outcome.case_id, outcome.metadata)
        missing = [o.case_id for o in outcomes if not o.stored]
        if missing:
            context.log.warning(f"{len(missing)} partition(s) have no stored event: {missing[:10]}")
        # Batch figures go to the run's log: a partition's metadata is that dispute's alone.
        context.log.info(f"raw_case batch: {len(outcomes)} disputes, {len(missing)} without a stored event")
        return MaterializeResult()

    @asset(
        **PER_DISPUTE,
        deps=[raw_case],
        kinds={"postgres"},
        retry_policy=retry,
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
        mine = run_disputes(context, postgres.db)
        report_foreign(context, mine)
        outcomes = enrich_batch(
            postgres.db, list(mine.keys), Providers(crm=crm, billing=billing, payments=payments),
            fetches_in_flight=settings.enrich_fetches_in_flight, disputes_in_flight=settings.enrich_disputes_in_flight,
            refetch=config.refetch, run_id=context.run_id,
        )  # fmt: skip
        for outcome in outcomes:
            add_metadata(context, mine, outcome.case_id, outcome.metadata)
        failures = {o.case_id: o.error for o in outcomes if o.result == "fetch_failed"}
        if failures:
            raise Failure(
                description=f"{len(failures)} of {sum(o.result != 'skipped' for o in outcomes)} disputes could not be "
                "fetched; they are marked fetch_failed and the step will be retried",
                metadata={"failures": MetadataValue.json(failures)},
            )
        counts = {name: sum(o.result == result for o in outcomes) for name, result in ENRICH_COUNTS.items()}
        context.log.info("enriched_context batch: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
        return MaterializeResult()

    @asset(
        **PER_DISPUTE,
        deps=[enriched_context],
        kinds={"openai", "chroma", "postgres"},
        pool="llm",
        retry_policy=retry,
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
        outcomes = propose_batch(
            db, keys, vectors=vectors, proposer=proposer, limits=limits, email=email, sqs=sqs, settings=settings,
            proposals_in_flight=settings.proposals_in_flight, regenerate=config.regenerate, run_id=context.run_id,
        )  # fmt: skip
        for outcome in outcomes:
            if outcome.result == "refused":
                context.log.warning(f"{outcome.case_id}: not saved, the dispute moved on while its proposal was being made")
            elif outcome.result == "blocked":
                context.log.warning(f"{outcome.case_id}: proposal v{outcome.version} is over a cap ({outcome.failed_caps}); "
                                    "it can not be executed")  # fmt: skip
            yield _proposal_event(outcome)
        # The cap checks: one evaluation for the whole run (every dispute of the range that has a
        # proposal, this run's or an earlier one), recorded per dispute. A failing dispute is blocked
        # in Postgres; the run goes on for the others.
        skipped_why = {o.case_id: f"proposal failed: {o.error}" for o in outcomes if o.result == "failed"}
        skipped_why |= {o.case_id: o.reason or "" for o in outcomes if o.result == "skipped"}
        checked = evaluate_stored(db, keys, limits.caps, context.run_id)
        unchecked = {k: skipped_why.get(k, "no proposal on record") for k in keys if k not in checked}
        targets = latest_materializations(context.instance, list(checked))
        yield from cap_check_evaluations(checked, unchecked, set(context.selected_asset_check_keys), targets)
        over = sorted(k for k, c in checked.items() if not c.passed)
        if over:
            context.log.warning(f"cap checks: {len(over)} of {len(checked)} disputes over a cap, blocked: {over[:20]}")
        for check_key in context.selected_asset_check_keys:
            yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key))
        failures = {o.case_id: o.error for o in outcomes if o.result == "failed"}
        if failures:
            raise Failure(
                description=f"{len(failures)} of {sum(o.result != 'skipped' for o in outcomes)} proposals failed; "
                "marked proposal_failed, the step retries",
                metadata={"failures": MetadataValue.json(failures)},
            )
        n = {result: sum(o.result == result for o in outcomes) for result in ("blocked", "refused", "skipped")}
        cost = sum((o.proposal.proposal.cost_usd for o in outcomes if o.saved and o.proposal), Decimal("0"))
        context.log.info(
            f"ai_proposal batch: {sum(o.saved for o in outcomes)} proposed ({sum(o.auto_approved for o in outcomes)} "
            f"auto-approved), {n['blocked']} blocked by a cap, {n['refused']} not saved (moved on), {n['skipped']} skipped; "
            f"{len(checked)} cap-checked, {len(over)} over a cap; LLM cost ${cost}"
        )

    @asset(
        **PER_DISPUTE,
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
                raise Failure(
                    description="a launchpad decision is for one dispute: select a single partition", allow_retries=False
                )
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

    @asset(
        **PER_DISPUTE,
        deps=[review_decision],
        kinds={"stripe", "postgres"},
        retry_policy=retry,
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
        mine = run_disputes(context, postgres.db)
        report_foreign(context, mine)
        outcomes = execute_batch(
            postgres.db, mine.keys, payments=payments, billing=billing, crm=crm, email=email, caps=limits.caps,
            executions_in_flight=settings.executions_in_flight, run_id=context.run_id,
        )  # fmt: skip
        errors: dict[str, str] = {}
        refused_by_provider: dict[str, str] = {}
        for outcome in outcomes:
            key, error = outcome.case_id, outcome.error or ""
            if outcome.result == "refused":
                add_metadata(context, mine, key, {"status": "refused", "reason": error})
                context.log.warning(f"{key}: {error}")
            elif outcome.result == "refused_by_provider":
                refused_by_provider[key] = error
                add_metadata(context, mine, key, {"status": "execution_failed", "error": error})
                context.log.error(f"{key}: {error}")
            elif outcome.result == "failed" or outcome.execution is None:
                errors[key] = error
                add_metadata(context, mine, key, {"status": "execution_failed", "error": error})
            else:
                add_metadata(context, mine, key, _execution_metadata(outcome.execution))
        # A refusal the provider stated is final for that dispute (execution_failed, with the reason); in
        # a run of one dispute it fails the run, in a batch it must not keep the others from being
        # remembered. Any other error fails the step, which retries: done disputes replay as already_done.
        permanent = not errors
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

    @asset(
        **PER_DISPUTE,
        deps=[executed_resolution],
        kinds={"chroma"},
        pool="chroma_writer",
        retry_policy=retry,
        description="The final resolution upserted into Chroma dispute_resolutions (one entry per case), so the "
        "next similar dispute finds it among its similar cases.",
    )
    def resolution_embedding(
        context: AssetExecutionContext, postgres: PostgresResource, vectors: VectorStoreResource
    ) -> MaterializeResult:
        from dispute_platform.workflow.remember import remember_resolutions

        mine = run_disputes(context, postgres.db)
        report_foreign(context, mine)
        # In a review batch, a dispute already remembered (an earlier attempt of this step) is done.
        remembered_all = remember_resolutions(
            postgres.db, vectors, mine.keys, context.run_id, skip_completed=mine.batch is not None
        )
        for remembered in remembered_all:  # one encoder call
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

    return [raw_case, enriched_context, ai_proposal, review_decision, executed_resolution, resolution_embedding]
