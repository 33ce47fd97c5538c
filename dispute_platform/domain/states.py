"""A dispute's status in `workflow_states`, and which step may act on which status.

Steps re-run (retries, re-materialisations from the UI, redelivered events), so every step first
asks whether the dispute is in a state it may act on; a step never moves a dispute backwards.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RECEIVED = "received"  # event stored
    RUNNING = "running"  # intake under way
    FETCH_FAILED = "fetch_failed"  # a source system failed; the run retries
    INVALID = "invalid"  # stopped by validation, with the reason
    ENRICHED = "enriched"  # valid, waiting for a proposal
    PROPOSAL_FAILED = "proposal_failed"
    BLOCKED = "blocked"  # the proposal broke a cap: it can never be executed
    PENDING_REVIEW = "pending_review"
    REVIEW_ESCALATED = "review_escalated"  # pending beyond the SLA
    AWAITING_SECOND_REVIEW = "awaiting_second_review"  # four-eyes: one approval of two
    DECIDED = "decided"  # approved or modified: execution next
    REJECTED = "rejected"  # reviewer said no: recorded no-op
    EXECUTING = "executing"
    EXECUTION_FAILED = "execution_failed"
    EXECUTED = "executed"
    COMPLETED = "completed"  # executed (or rejected) and remembered in Chroma


INTAKE_MAY_RUN = {Status.RECEIVED, Status.RUNNING, Status.FETCH_FAILED, Status.INVALID, Status.ENRICHED}
PROPOSAL_MAY_RUN = {Status.ENRICHED, Status.PROPOSAL_FAILED}
# A reviewer may ask for a fresh proposal while nothing has been decided yet.
PROPOSAL_MAY_REGENERATE = PROPOSAL_MAY_RUN | {Status.BLOCKED, Status.PENDING_REVIEW, Status.REVIEW_ESCALATED}
AWAITING_DECISION = {Status.PENDING_REVIEW, Status.REVIEW_ESCALATED, Status.AWAITING_SECOND_REVIEW}
EXECUTION_MAY_RUN = {Status.DECIDED, Status.REJECTED, Status.EXECUTING, Status.EXECUTION_FAILED}
EMBEDDING_MAY_RUN = {Status.EXECUTED, Status.REJECTED, Status.COMPLETED}
# Where a run of the intake job has nothing left to do for a dispute.
INTAKE_SETTLED = {
    Status.INVALID, Status.BLOCKED, Status.PROPOSAL_FAILED, Status.PENDING_REVIEW, Status.REVIEW_ESCALATED,
    Status.AWAITING_SECOND_REVIEW, Status.DECIDED, Status.REJECTED, Status.EXECUTING, Status.EXECUTION_FAILED,
    Status.EXECUTED, Status.COMPLETED,
}  # fmt: skip
