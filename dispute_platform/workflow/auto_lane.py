"""The policy auto-approval lane (rules in domain/auto_lane.py): a qualifying proposal is approved
through the reviewers' own path under the `auto-policy` lane's record, so the review sensor
executes it with every money guarantee; a sampled share waits for a person's verdict after the
fact, and a reversal is a new, audited dispute action (the money already moved once; undoing it
is a follow-up for people, never an edit of the record)."""

from __future__ import annotations

from collections.abc import Sequence

from dispute_platform.domain.auto_lane import LANE, AutoLaneRule, AutoVerdict, auto_verdict, sampled_for_review
from dispute_platform.domain.caps import CapResult
from dispute_platform.domain.models import ResolutionProposal
from dispute_platform.domain.review import DecisionRefused
from dispute_platform.resources.limits import Limits
from dispute_platform.store import actions, repo
from dispute_platform.store.db import Database
from dispute_platform.store.reviewers import Reviewer, system_reviewer
from dispute_platform.store.transitions import lock_case
from dispute_platform.workflow.review import record_decision


def lane_rule(limits: Limits) -> AutoLaneRule:
    return AutoLaneRule(
        max_usd=limits.auto_approve_max_usd,
        min_confidence=limits.auto_approve_min_confidence,
        sample_rate=limits.auto_approve_sample_rate,
    )


def consider_auto_approval(
    db: Database,
    case_id: str,
    version: int,
    proposal: ResolutionProposal,
    caps: Sequence[CapResult],
    limits: Limits,
    run_id: str | None,
) -> AutoVerdict:
    """Approve the proposal as the lane when it qualifies. Returns the verdict either way."""
    verdict = auto_verdict(proposal, caps, lane_rule(limits), limits.usd_rates)
    if not verdict.eligible:
        return verdict
    lane = db.transact(lambda cur: system_reviewer(cur, LANE))
    try:
        recorded = record_decision(
            db, case_id=case_id, decision="approved", reviewer=lane, comments=f"auto-approved: {verdict.reason}",
            proposal_version=version, modified=None, source=LANE, limits=limits,
        )  # fmt: skip
    except DecisionRefused as refused:  # the dispute moved on (a person decided first): theirs stands
        return AutoVerdict(False, f"not approved by the lane: {refused.reason}")
    sampled = sampled_for_review(case_id, limits.auto_approve_sample_rate)
    details = {"reason": verdict.reason, "confidence": proposal.confidence, "calibration": proposal.calibration,
               "final": recorded.outcome.final}  # fmt: skip
    db.transact(lambda cur: (
        actions.record_action(cur, case_id=case_id, version=version, kind="auto_approved", reviewer_id=lane.id,
                              decision_id=recorded.decision_id, sampled=sampled, details=details),
        repo.audit(cur, case_id, "review_decision", "auto_approved", details | {"sampled_for_review": sampled},
                   actor=LANE, run_id=run_id),
    ))  # fmt: skip
    return verdict


def review_after_the_fact(db: Database, case_id: str, reviewer: Reviewer, verdict: str, comments: str) -> int:
    """A person's verdict on an auto-approval: `upheld` or `reversed`. A reversal does not touch
    the money or the decision: it is recorded (and audited) as a dispute action for follow-up."""
    if verdict not in ("upheld", "reversed"):
        raise DecisionRefused(422, "verdict is 'upheld' or 'reversed'")
    if reviewer.kind != "person":
        raise DecisionRefused(403, "only a person reviews the lane's decisions")
    if verdict == "reversed" and not comments.strip():
        raise DecisionRefused(422, "a reversal needs comments saying why and what should happen to the money")

    def write(cur) -> int:
        lock_case(cur, case_id)
        found = actions.auto_approval(cur, case_id)
        if found is None:
            raise DecisionRefused(404, f"{case_id} was not auto-approved")
        if found["verdict"] is not None:
            raise DecisionRefused(409, f"{case_id} was already {found['verdict'].removeprefix('post_review_')} by "
                                       f"{found['verdict_by']}")  # fmt: skip
        kind = f"post_review_{verdict}"
        action_id = actions.record_action(cur, case_id=case_id, version=found["proposal_version"], kind=kind,
                                          reviewer_id=reviewer.id, details={"comments": comments})  # fmt: skip
        repo.audit(cur, case_id, "review_decision", kind, {"comments": comments, "auto_decision": found["decision_id"]},
                   actor=reviewer.name)  # fmt: skip
        return action_id

    return db.transact(write)
