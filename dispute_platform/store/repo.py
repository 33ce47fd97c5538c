"""Compatibility facade: the store functions callers reach as `repo.<name>`.

repo.py used to hold intake, workflow state, costs, proposals, cap checks and the model cache in
one module. They now live in one module per table, and this module re-exports them unchanged
(the same function objects), so `from dispute_platform.store import repo` and `repo.<fn>` keep
working at every call site. New code may import from the table modules directly:

- store/events.py: dispute_events and rejected_events (intake, the SQS sensor's reads)
- store/workflow_states.py: workflow_states reads, the workflow id, the review queue
- store/costs.py: the cost totals of workflow_states
- store/proposals.py: proposals
- store/check_results.py: check_results
- store/proposal_cache.py: proposal_cache
- store/audit.py: audit_log and the JSON binding

Nothing is defined here; add a new function to its table's module (and to `__all__` below only
if callers should reach it through repo).
"""

from __future__ import annotations

from dispute_platform.store.audit import audit, audit_trail, jsonb
from dispute_platform.store.check_results import check_results, record_check
from dispute_platform.store.costs import add_cost
from dispute_platform.store.events import (
    AcceptedEvent,
    NewDispute,
    RejectedBody,
    ReturningDispute,
    escape_nul,
    events_for,
    first_event,
    last_event_id,
    new_disputes_after,
    record_accepted,
    record_rejected,
    returning_disputes_between,
)
from dispute_platform.store.proposal_cache import cache_get, cache_invalidate_type, cache_put
from dispute_platform.store.proposals import latest_proposal, latest_proposals, set_proposal_status
from dispute_platform.store.workflow_states import (
    WORKFLOW_NAMESPACE,
    case_for_run_id,
    overdue_reviews,
    pending_reviews,
    status_counts,
    workflow_run_id,
    workflow_state,
    workflow_states,
)

__all__ = [
    "WORKFLOW_NAMESPACE",
    "AcceptedEvent",
    "NewDispute",
    "RejectedBody",
    "ReturningDispute",
    "add_cost",
    "audit",
    "audit_trail",
    "cache_get",
    "cache_invalidate_type",
    "cache_put",
    "case_for_run_id",
    "check_results",
    "escape_nul",
    "events_for",
    "first_event",
    "jsonb",
    "last_event_id",
    "latest_proposal",
    "latest_proposals",
    "new_disputes_after",
    "overdue_reviews",
    "pending_reviews",
    "record_accepted",
    "record_check",
    "record_rejected",
    "returning_disputes_between",
    "set_proposal_status",
    "status_counts",
    "workflow_run_id",
    "workflow_state",
    "workflow_states",
]
