"""The ai_proposal step for a run's disputes: a proposal for each dispute that may have one
(workflow/propose.py), saved with its cost and audit row, then the auto-approval lane or the
reviewers' notification. One `ProposalStepOutcome` per dispute; nothing here raises for one
dispute's failure (it is recorded as proposal_failed and returned). The cap checks' evaluation
and what the partitions show are the asset's."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal

from dispute_platform.domain.models import EnrichedContext
from dispute_platform.domain.states import PROPOSAL_MAY_REGENERATE, PROPOSAL_MAY_RUN, Status
from dispute_platform.resources.email import EmailSender
from dispute_platform.resources.limits import Limits
from dispute_platform.resources.llm import ProposalProvider
from dispute_platform.resources.sqs import SQSResource
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.settings import Settings
from dispute_platform.store import repo
from dispute_platform.store.db import Database
from dispute_platform.store.proposals import save_proposal
from dispute_platform.store.transitions import transition
from dispute_platform.workflow.auto_lane import consider_auto_approval
from dispute_platform.workflow.calibration import load_calibration
from dispute_platform.workflow.enrich import load_context
from dispute_platform.workflow.notify import notify_reviewers
from dispute_platform.workflow.propose import ProposalOutcome, propose, query_text

STEP = "ai_proposal"
NOT_SAVED = "proposal not saved: the dispute moved on while it was being made (see its audit trail)"

ProposalStepResult = Literal["proposed", "blocked", "refused", "failed", "skipped"]


@dataclass(frozen=True)
class ProposalStepOutcome:
    """What ai_proposal did for one dispute.

    proposed: saved (`status` pending_review or model_failed), then auto-approved or sent to the
    reviewers (`auto_approval` says which and why); blocked: saved but over a cap (`failed_caps`);
    refused: the model answered (and was paid) but the dispute moved on, nothing saved;
    failed: no proposal (`error`; the dispute is proposal_failed and the step retries);
    skipped: not asked for (`reason`: the dispute's state)."""

    case_id: str
    result: ProposalStepResult
    reason: str | None = None
    error: str | None = None
    proposal: ProposalOutcome | None = None
    version: int | None = None
    status: Status | None = None
    failed_caps: list[str] = field(default_factory=list)
    auto_approval: str | None = None
    auto_approved: bool = False
    latency_ms: int = 0

    @property
    def saved(self) -> bool:
        return self.result in ("proposed", "blocked")


def propose_batch(
    db: Database,
    keys: Sequence[str],
    *,
    vectors: VectorStoreResource,
    proposer: ProposalProvider,
    limits: Limits,
    email: EmailSender,
    sqs: SQSResource,
    settings: Settings,
    proposals_in_flight: int,
    regenerate: bool,
    run_id: str | None,
) -> list[ProposalStepOutcome]:
    """Propose for the disputes of `keys` that may have a proposal (`regenerate`: also those with
    an undecided one), `proposals_in_flight` at a time when the provider waits on the network.
    `settings` is for the reviewers' notification (addresses and links). One outcome per key: the
    asked-for ones in order, then the skipped."""
    states, latest = db.transact(lambda cur: (repo.workflow_states(cur, keys), repo.latest_proposals(cur, keys)))
    allowed = PROPOSAL_MAY_REGENERATE if regenerate else PROPOSAL_MAY_RUN
    # A proposal this run already saved (an earlier attempt of this step) is not asked for again.
    todo = [k for k in keys if states.get(k, {}).get("status") in allowed
            and (latest.get(k) or {}).get("dagster_run_id") != run_id]  # fmt: skip
    events = db.transact(lambda cur: repo.events_for(cur, todo)) if todo else {}
    contexts = {k: load_context(states[k], events[k]["body"] if k in events else None) for k in todo}
    proposal_limits = limits.proposal_limits()
    calibration = load_calibration(db) if todo else None  # the newest fit (proposal_calibration asset)
    # One encoder call for the whole batch: far cheaper than one per dispute.
    vectors_by_key = dict(zip(todo, vectors.embedder.encode([query_text(contexts[k]) for k in todo]), strict=True))

    def one(key: str) -> tuple[ProposalOutcome | Exception, float]:
        started = time.perf_counter()
        try:
            spent = Decimal(states[key]["llm_cost"] or 0)
            outcome = propose(contexts[key], vectors, proposer, db, proposal_limits, vectors_by_key[key], spent,
                              calibration=calibration)  # fmt: skip
            return outcome, started
        except Exception as exc:  # noqa: BLE001 - recorded per dispute as proposal_failed, below
            return exc, started

    # Paid providers wait on the network; the rules engine does not.
    workers = proposals_in_flight if proposer.cacheable else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(zip(todo, pool.map(one, todo), strict=True))

    outcomes: list[ProposalStepOutcome] = []
    for key, (outcome, started) in results:
        if isinstance(outcome, Exception):
            reason = f"{outcome.__class__.__name__}: {outcome}"
            db.transact(lambda cur, key=key, reason=reason: (
                transition(cur, key, Status.PROPOSAL_FAILED, STEP, reason, allowed_from=allowed, run_id=run_id)
                and repo.audit(cur, key, STEP, "failed", {"error": reason}, run_id=run_id),
            ))  # fmt: skip
            outcomes.append(ProposalStepOutcome(key, "failed", error=reason))
            continue
        saved = _save(db, key, outcome, allowed, limits, run_id)
        if saved.result == "proposed":
            saved = _route(db, saved, outcome, limits, email, sqs, settings, contexts[key], run_id)
        outcomes.append(replace(saved, latency_ms=int((time.perf_counter() - started) * 1000)))
    for key in keys:
        if key not in contexts:
            state = states.get(key, {})
            status = state.get("status", "no workflow state")
            reason = f"dispute is {status}" + (f" ({state['status_reason']})" if state.get("status_reason") else "")
            outcomes.append(ProposalStepOutcome(key, "skipped", reason=reason))
    return outcomes


def _save(
    db: Database, key: str, outcome: ProposalOutcome, allowed: frozenset[Status], limits: Limits, run_id: str | None
) -> ProposalStepOutcome:
    """The proposal's cost, the proposal (unless the dispute moved on) and its audit row, in one transaction."""
    proposal = outcome.proposal
    blocked = not outcome.within_caps
    # A model that gave no usable answer is its own state (a person decides, or asks again).
    status = Status.BLOCKED if blocked else Status.MODEL_FAILED if "model_failure" in proposal.flags else Status.PENDING_REVIEW
    failed_caps = [c.name for c in outcome.caps if not c.passed]
    document = proposal.model_dump(mode="json")

    def save(cur) -> int | None:
        reason = f"over cap: {', '.join(failed_caps)}" if failed_caps else None
        if reason is None and "model_failure" in proposal.flags:
            reason = proposal.reasoning[:500]  # the model failed: the reviewer decides, and sees why
        # The model was paid whether or not the proposal can still be saved.
        repo.add_cost(cur, key, f"llm:{proposal.model}", proposal.cost_usd, llm=True)
        version = save_proposal(cur, key, document, status=status, allowed_from=allowed, reason=reason, run_id=run_id)
        if version is None:  # a decision (or more) happened since this batch read the dispute
            return None
        repo.audit(cur, key, STEP, "blocked" if failed_caps else "proposed",
                   {"version": version, "action": proposal.action.value, "amount": str(proposal.amount),
                    "failed_caps": failed_caps}, run_id=run_id)  # fmt: skip
        return version

    version = db.transact(save)
    if version is None:
        return ProposalStepOutcome(key, "refused", reason=NOT_SAVED, proposal=outcome)
    if blocked:
        return ProposalStepOutcome(key, "blocked", proposal=outcome, version=version, status=status,
                                   failed_caps=failed_caps, auto_approval="blocked by a cap")  # fmt: skip
    return ProposalStepOutcome(key, "proposed", proposal=outcome, version=version, status=status)


def _route(
    db: Database,
    saved: ProposalStepOutcome,
    outcome: ProposalOutcome,
    limits: Limits,
    email: EmailSender,
    sqs: SQSResource,
    settings: Settings,
    context: EnrichedContext,
    run_id: str | None,
) -> ProposalStepOutcome:
    """A saved proposal within the caps: approved by the policy lane when it qualifies (the review
    sensor executes it, like any decision), otherwise the reviewers are told."""
    assert saved.version is not None
    lane = consider_auto_approval(db, saved.case_id, saved.version, outcome.proposal, outcome.caps, limits, run_id)
    if not lane.eligible:
        notify_reviewers(db, email, sqs, settings, context, outcome, saved.version, run_id=run_id)
    note = ("auto-approved: " if lane.eligible else "for a reviewer: ") + lane.reason
    return replace(saved, auto_approval=note, auto_approved=lane.eligible)
