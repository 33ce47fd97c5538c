"""Record a reviewer's decision: one transaction, the dispute locked, the pure rules deciding.
Used by the decision endpoint and by the launchpad path of `review_decision` alike."""

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
from dispute_platform.store import repo
from dispute_platform.store.db import Database


@dataclass(frozen=True)
class RecordedDecision:
    decision_id: int
    case_id: str
    proposal_version: int
    outcome: DecisionOutcome


def resolve_case_id(db: Database, case_id: str | None, run_id: str | None) -> str:
    """The case a decision names, by case id or workflow run id (both must agree when given)."""
    if run_id is not None:
        row = db.fetch_one("SELECT case_id FROM workflow_states WHERE run_id::text = %s", (run_id.lower(),))
        if row is None:
            raise DecisionRefused(404, f"no dispute with run_id {run_id}")
        if case_id is not None and case_id != row["case_id"]:
            raise DecisionRefused(422, f"run_id {run_id} belongs to {row['case_id']}, not {case_id}")
        return row["case_id"]
    if case_id is None:
        raise DecisionRefused(422, "name the dispute with case_id or run_id")
    return case_id


def record_decision(
    db: Database,
    *,
    case_id: str,
    decision: str,
    reviewer: str,
    comments: str,
    proposal_version: int | None,
    modified: ModifiedResolution | None,
    source: str,
    four_eyes_threshold: Decimal,
) -> RecordedDecision:
    def write(cur) -> RecordedDecision:
        repo.lock_case(cur, case_id)
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
        )
        prior = [
            PriorDecision(d["reviewer"], d["decision"], d["effective_action"], d["effective_amount"])
            for d in repo.decisions_for(cur, case_id, version)
        ]
        outcome = evaluate_decision(
            decision=decision,
            reviewer=reviewer,
            proposal_version=version,
            modified=modified,
            dispute=dispute,
            prior=prior,
            four_eyes_threshold=four_eyes_threshold,
        )
        modified_json = modified.model_dump(mode="json") if modified else None
        decision_id = repo.insert_decision(
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
            "reviewer": reviewer,
            "reviewers": [p.reviewer for p in prior] + [reviewer],
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
        repo.set_status(cur, case_id, outcome.new_status, "review_decision", reason, human_review_data=review)
        repo.set_proposal_status(cur, case_id, version, "decided" if outcome.final else "pending_review")
        repo.audit(cur, case_id, "review_decision", f"decision_{decision}", review, actor=reviewer)
        return RecordedDecision(decision_id, case_id, version, outcome)

    return db.transact(write)
