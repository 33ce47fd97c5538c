"""Record a reviewer's decision: one transaction, the dispute locked, the pure rules deciding,
the status moved by compare-and-set. Used by the decision endpoint, the review desk and the
launchpad path of `review_decision` alike.

Who decides is always a reviewer record proven by a credential: the endpoint's bearer token, or
for the launchpad a single-use ticket that the endpoint issued to an authenticated reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from dispute_platform.domain.models import Action, ModifiedResolution
from dispute_platform.domain.review import (
    DecisionOutcome,
    DecisionRefused,
    PendingDispute,
    PriorDecision,
    evaluate_decision,
)
from dispute_platform.domain.states import AWAITING_DECISION
from dispute_platform.resources.limits import Limits
from dispute_platform.store import repo
from dispute_platform.store import reviewers as reviewer_store
from dispute_platform.store.db import Database
from dispute_platform.store.reviewers import IssuedTicket, Reviewer
from dispute_platform.store.transitions import lock_case, transition


@dataclass(frozen=True)
class RecordedDecision:
    decision_id: int
    case_id: str
    proposal_version: int
    outcome: DecisionOutcome
    reviewer: Reviewer


def resolve_case_id(db: Database, case_id: str | None, run_id: str | None) -> str:
    """The case a decision names, by case id or workflow run id (both must agree when given)."""
    if run_id is not None:
        found = db.transact(lambda cur: repo.case_for_run_id(cur, run_id))
        if found is None:
            raise DecisionRefused(404, f"no dispute with run_id {run_id}")
        if case_id is not None and case_id != found:
            raise DecisionRefused(422, f"run_id {run_id} belongs to {found}, not {case_id}")
        return found
    if case_id is None:
        raise DecisionRefused(422, "name the dispute with case_id or run_id")
    return case_id


def _record(
    cur,
    *,
    case_id: str,
    decision: str,
    reviewer: Reviewer,
    comments: str,
    proposal_version: int | None,
    modified: ModifiedResolution | None,
    source: str,
    limits: Limits,
) -> RecordedDecision:
    lock_case(cur, case_id)
    state = repo.workflow_state(cur, case_id)
    proposal = repo.latest_proposal(cur, case_id)
    if state is None:
        raise DecisionRefused(404, f"no dispute {case_id}")
    if proposal is None:
        raise DecisionRefused(409, f"dispute {case_id} is {state['status']}, not pending review: it has no proposal")
    version = proposal_version if proposal_version is not None else state["proposal_version"]
    validation = state["validation"] or {}
    refundable = validation.get("refundable_amount")
    dispute = PendingDispute(
        case_id=case_id,
        status=state["status"],
        proposal_version=state["proposal_version"],
        proposed_action=Action(proposal["action"]),
        proposed_amount=proposal["amount"],
        disputed_amount=state["disputed_amount"] or Decimal("0"),
        refundable_amount=Decimal(str(refundable)) if refundable is not None else None,
        currency=state["currency"] or proposal["currency"],
    )
    prior = [
        PriorDecision(d["reviewer_id"], d["reviewer"], d["decision"], d["effective_action"], d["effective_amount"])
        for d in reviewer_store.decisions_for(cur, case_id, version)
    ]
    outcome = evaluate_decision(
        decision=decision,
        reviewer_id=reviewer.id,
        reviewer=reviewer.name,
        proposal_version=version,
        modified=modified,
        dispute=dispute,
        prior=prior,
        four_eyes_threshold_usd=limits.escalation_threshold_usd,
        usd_rates=limits.usd_rates,
    )
    modified_json = modified.model_dump(mode="json") if modified else None
    decision_id = reviewer_store.insert_decision(
        cur,
        case_id=case_id,
        version=version,
        decision=decision,
        reviewer=reviewer,
        comments=comments,
        modified=modified_json,
        effective_action=outcome.effective_action,
        effective_amount=outcome.effective_amount,
        source=source,
    )
    review = {
        "decision_id": decision_id,
        "decision": decision,
        "reviewer": reviewer.name,
        "reviewer_id": reviewer.id,
        "reviewers": [p.reviewer for p in prior] + [reviewer.name],
        "comments": comments,
        "modified_resolution": modified_json,
        "effective_action": outcome.effective_action,
        "effective_amount": str(outcome.effective_amount),
        "final": outcome.final,
        "changed_from_proposal": outcome.changed,
        "proposal_version": version,
        "source": source,
    }
    reason = "waiting for a second reviewer (four-eyes)" if not outcome.final else None
    moved = transition(
        cur, case_id, outcome.new_status, "review_decision", reason, allowed_from=AWAITING_DECISION,
        expect_version=version, actor=reviewer.name, human_review_data=review,
    )  # fmt: skip
    if not moved:  # the rules read this state under the same lock: only a bug gets here
        raise DecisionRefused(409, f"dispute {case_id} moved while the decision was being recorded")
    repo.set_proposal_status(cur, case_id, version, "decided" if outcome.final else "pending_review")
    repo.audit(cur, case_id, "review_decision", f"decision_{decision}", review, actor=reviewer.name)
    return RecordedDecision(decision_id, case_id, version, outcome, reviewer)


def record_decision(
    db: Database,
    *,
    case_id: str,
    decision: str,
    reviewer: Reviewer,
    comments: str,
    proposal_version: int | None,
    modified: ModifiedResolution | None,
    source: str,
    limits: Limits,
) -> RecordedDecision:
    if reviewer.kind != "person" and source != reviewer.name:
        raise DecisionRefused(403, f"{reviewer.name} is a platform lane, not a reviewer")
    return db.transact(
        lambda cur: _record(
            cur, case_id=case_id, decision=decision, reviewer=reviewer, comments=comments,
            proposal_version=proposal_version, modified=modified, source=source, limits=limits,
        )
    )  # fmt: skip


def issue_decision_ticket(db: Database, reviewer: Reviewer, case_id: str, proposal_version: int, limits: Limits,
                          via: str) -> IssuedTicket:  # fmt: skip
    """A single-use ticket for one launchpad decision on the current proposal of a pending dispute."""

    def issue(cur) -> IssuedTicket:
        lock_case(cur, case_id)
        state = repo.workflow_state(cur, case_id)
        if state is None:
            raise DecisionRefused(404, f"no dispute {case_id}")
        if state["status"] not in AWAITING_DECISION:
            raise DecisionRefused(409, f"dispute {case_id} is {state['status']}, not pending review")
        if proposal_version != state["proposal_version"]:
            raise DecisionRefused(
                409, f"proposal version {proposal_version} is stale: the current proposal is version {state['proposal_version']}"
            )
        issued = reviewer_store.issue_ticket(cur, reviewer, case_id, proposal_version, limits.decision_ticket_ttl_seconds, via)
        repo.audit(cur, case_id, "review_decision", "ticket_issued",
                   {"proposal_version": proposal_version, "expires_at": issued.expires_at.isoformat(), "via": via},
                   actor=reviewer.name)  # fmt: skip
        return issued

    return db.transact(issue)


def decide_with_ticket(
    db: Database,
    *,
    ticket: str,
    case_id: str,
    decision: str,
    comments: str,
    proposal_version: int | None,
    modified: ModifiedResolution | None,
    limits: Limits,
    run_id: str | None,
) -> RecordedDecision:
    """A launchpad decision: the ticket is burnt first (it never works twice, even when the decision
    is refused), then it must be unexpired, its reviewer active, and issued for this dispute and
    proposal version; the decision is recorded as that reviewer's."""
    use = db.transact(lambda cur: reviewer_store.consume_ticket(cur, ticket, run_id))
    if use is None:
        raise DecisionRefused(401, "the decision ticket is unknown or was already used: get a new one from the endpoint")
    if use.revoked:
        raise DecisionRefused(401, f"the ticket's reviewer {use.reviewer.name} has been revoked")
    if use.expired:
        raise DecisionRefused(401, "the decision ticket has expired: get a new one from the endpoint")
    if use.case_id != case_id:
        raise DecisionRefused(403, f"the ticket was issued for {use.case_id}, not {case_id}")
    if proposal_version is not None and proposal_version != use.proposal_version:
        raise DecisionRefused(409, f"the ticket was issued for proposal version {use.proposal_version}, not {proposal_version}")
    return record_decision(
        db, case_id=case_id, decision=decision, reviewer=use.reviewer, comments=comments,
        proposal_version=use.proposal_version, modified=modified, source="launchpad", limits=limits,
    )  # fmt: skip
