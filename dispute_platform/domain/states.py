"""A dispute's status in `workflow_states`, and the one state machine every writer goes through.

Steps re-run (retries, re-materialisations from the UI, redelivered events, backfills), reviewers
decide while batches run, and the SLA sweep acts on what it read a moment ago. So a status is never
simply written: `store.transitions.transition` moves a dispute to `to` only if its current status is
in `ALLOWED_FROM[to]` (a compare-and-set under the dispute's lock). `ALLOWED_FROM` is the machine;
`RANK` orders the statuses and no allowed move lowers it, so no entry point can move a dispute
backwards (a test checks both).
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
    MODEL_FAILED = "model_failed"  # the model gave no usable proposal: a person decides (or asks again)
    PENDING_REVIEW = "pending_review"
    REVIEW_ESCALATED = "review_escalated"  # pending beyond the SLA
    AWAITING_SECOND_REVIEW = "awaiting_second_review"  # four-eyes: one approval of two
    DECIDED = "decided"  # approved or modified: execution next
    REJECTED = "rejected"  # reviewer said no: recorded no-op
    EXECUTING = "executing"
    EXECUTION_FAILED = "execution_failed"
    EXECUTED = "executed"
    COMPLETED = "completed"  # executed (or rejected) and remembered in Chroma


INTAKE_MAY_RUN = frozenset({Status.RECEIVED, Status.RUNNING, Status.FETCH_FAILED, Status.INVALID, Status.ENRICHED})
# Not yet past enrichment: what enriched_context does unless asked to fetch again.
ENRICHMENT_PENDING = frozenset({Status.RECEIVED, Status.RUNNING, Status.FETCH_FAILED})
PROPOSAL_MAY_RUN = frozenset({Status.ENRICHED, Status.PROPOSAL_FAILED})
# A reviewer may ask for a fresh proposal while nothing has been decided yet.
PROPOSAL_MAY_REGENERATE = PROPOSAL_MAY_RUN | {Status.BLOCKED, Status.MODEL_FAILED, Status.PENDING_REVIEW, Status.REVIEW_ESCALATED}
AWAITING_DECISION = frozenset(
    {Status.PENDING_REVIEW, Status.MODEL_FAILED, Status.REVIEW_ESCALATED, Status.AWAITING_SECOND_REVIEW}
)
EXECUTION_MAY_RUN = frozenset({Status.DECIDED, Status.REJECTED, Status.EXECUTING, Status.EXECUTION_FAILED})
EMBEDDING_MAY_RUN = frozenset({Status.EXECUTED, Status.REJECTED, Status.COMPLETED})
# A final decision waits for the review run (decided: money to move; rejected: the no-op to record).
AWAITING_EXECUTION = frozenset({Status.DECIDED, Status.REJECTED})
# Where a run of the intake job has nothing left to do for a dispute.
INTAKE_SETTLED = frozenset({
    Status.INVALID, Status.BLOCKED, Status.PROPOSAL_FAILED, Status.MODEL_FAILED, Status.PENDING_REVIEW, Status.REVIEW_ESCALATED,
    Status.AWAITING_SECOND_REVIEW, Status.DECIDED, Status.REJECTED, Status.EXECUTING, Status.EXECUTION_FAILED,
    Status.EXECUTED, Status.COMPLETED,
})  # fmt: skip
# Settled for good: nothing more happens to the dispute unless its case comes back.
FINAL = frozenset({Status.INVALID, Status.REJECTED, Status.EXECUTED, Status.COMPLETED})

# The machine: a dispute may move to the key only from one of the listed statuses.
ALLOWED_FROM: dict[Status, frozenset[Status]] = {
    Status.RECEIVED: frozenset(),  # only ever inserted
    Status.RUNNING: INTAKE_MAY_RUN,
    Status.FETCH_FAILED: INTAKE_MAY_RUN,
    Status.INVALID: INTAKE_MAY_RUN,
    Status.ENRICHED: INTAKE_MAY_RUN,
    Status.PROPOSAL_FAILED: PROPOSAL_MAY_REGENERATE,
    # A proposal over a cap stops before any decision; once a decision exists, a late check result
    # only refuses execution (it does not reopen the dispute).
    Status.BLOCKED: PROPOSAL_MAY_REGENERATE,
    Status.PENDING_REVIEW: PROPOSAL_MAY_REGENERATE,
    Status.MODEL_FAILED: PROPOSAL_MAY_REGENERATE,
    Status.REVIEW_ESCALATED: frozenset({Status.PENDING_REVIEW, Status.MODEL_FAILED}),
    Status.AWAITING_SECOND_REVIEW: frozenset({Status.PENDING_REVIEW, Status.MODEL_FAILED, Status.REVIEW_ESCALATED}),
    Status.DECIDED: AWAITING_DECISION,
    Status.REJECTED: AWAITING_DECISION | {Status.REJECTED},
    Status.EXECUTING: frozenset({Status.DECIDED, Status.EXECUTING, Status.EXECUTION_FAILED}),
    Status.EXECUTION_FAILED: frozenset({Status.EXECUTING, Status.EXECUTION_FAILED}),
    Status.EXECUTED: frozenset({Status.EXECUTING, Status.EXECUTION_FAILED, Status.EXECUTED}),
    Status.COMPLETED: frozenset({Status.EXECUTED, Status.REJECTED, Status.COMPLETED}),
}

# Progress of a dispute; every allowed move keeps or raises it.
RANK: dict[Status, int] = {
    Status.RECEIVED: 0,
    Status.RUNNING: 1, Status.FETCH_FAILED: 1, Status.INVALID: 1, Status.ENRICHED: 1,
    Status.PROPOSAL_FAILED: 2, Status.BLOCKED: 2, Status.MODEL_FAILED: 2, Status.PENDING_REVIEW: 2,
    Status.REVIEW_ESCALATED: 2,
    Status.AWAITING_SECOND_REVIEW: 3,
    Status.DECIDED: 4, Status.REJECTED: 4,
    Status.EXECUTING: 5, Status.EXECUTION_FAILED: 5,
    Status.EXECUTED: 6,
    Status.COMPLETED: 7,
}  # fmt: skip


def may_move(current: str, to: Status) -> bool:
    return current in ALLOWED_FROM[to]
