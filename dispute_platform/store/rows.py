"""Typed rows of the platform's tables, as the store's cursors return them (`SELECT *`, `RETURNING *`).

One `TypedDict` per table, with the columns of sql/*.sql (later migrations' ALTERs included) and
the Python types psycopg2 gives them: NUMERIC -> Decimal, REAL -> float, TIMESTAMPTZ -> datetime,
JSONB -> what json.loads makes of it, UUID -> str (no UUID adapter is registered). A nullable
column is `X | None`. Rows stay plain dicts at run time (RealDictCursor's), so callers index them
as before (`row["status"]`, `row.get(...)`); the types only tell mypy and the reader what is in
them. A store function turns a cursor result into one of these with `cast` at one place.

Rows of one query's own shape (a join, an aggregate) are typed beside the function that runs it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict


class WorkflowStateRow(TypedDict):
    """workflow_states (sql/001, archived_at from sql/012): one row per dispute."""

    id: int
    run_id: str
    case_id: str
    customer_id: str | None
    status: str
    current_step: str
    status_reason: str | None
    dispute_type: str | None
    segment: str | None
    disputed_amount: Decimal | None
    currency: str | None
    crm_data: dict[str, Any] | None
    billing_data: dict[str, Any] | None
    payment_data: dict[str, Any] | None
    validation: dict[str, Any] | None
    resolution_proposal: dict[str, Any] | None
    proposal_version: int
    human_review_data: dict[str, Any] | None
    final_resolution: dict[str, Any] | None
    llm_cost: Decimal
    total_cost: Decimal
    cost_breakdown: dict[str, float]  # service -> USD (a JSON number)
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    archived_at: datetime | None


class EventRow(TypedDict):
    """dispute_events (sql/001): one accepted SQS event."""

    id: int
    case_id: str
    event_id: str
    customer_id: str | None
    body: dict[str, Any]
    message_id: str | None
    source_queue: str | None
    received_at: datetime


class ProposalRow(TypedDict):
    """proposals (sql/002): one proposal version of a dispute."""

    id: int
    case_id: str
    version: int
    status: str
    proposal: dict[str, Any]
    action: str
    amount: Decimal
    currency: str
    confidence: float
    provider: str
    model: str
    prompt_version: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    cache_hit: bool
    latency_ms: int
    flags: list[str]
    dagster_run_id: str | None
    created_at: datetime


class CheckResultRow(TypedDict):
    """check_results (sql/002): one cap check of one proposal version."""

    case_id: str
    proposal_version: int
    check_name: str
    passed: bool
    figure: Decimal
    cap: Decimal
    dagster_run_id: str | None
    evaluated_at: datetime


class ReviewerRow(TypedDict):
    """reviewers (sql/002, kind and token_rotated_at from sql/006)."""

    id: int
    name: str
    email: str | None
    token_sha256: str
    created_at: datetime
    disabled_at: datetime | None
    kind: str
    token_rotated_at: datetime | None


class ReviewDecisionRow(TypedDict):
    """review_decisions (sql/002, reviewer_id from sql/006): append-only."""

    id: int
    case_id: str
    proposal_version: int
    decision: str
    reviewer: str
    comments: str
    modified_resolution: dict[str, Any] | None
    effective_action: str
    effective_amount: Decimal
    source: str
    created_at: datetime
    reviewer_id: int | None  # NOT NULL for new rows (a NOT VALID check); rows from before sql/006 may lack it


class ExecutionRow(TypedDict):
    """executions (sql/002, charge_id, customer_id and reconciled from sql/006): one money movement."""

    id: int
    case_id: str
    proposal_version: int
    decision_id: int
    idempotency_key: str
    action: str
    amount: Decimal
    currency: str
    status: str
    provider_ref: str | None
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    charge_id: str | None
    customer_id: str | None
    reconciled: bool


class DisputeActionRow(TypedDict):
    """dispute_actions (sql/007): auto-approvals and the verdicts on them, append-only."""

    id: int
    case_id: str
    proposal_version: int
    kind: str
    reviewer_id: int
    decision_id: int | None
    sampled: bool
    details: dict[str, Any]
    created_at: datetime


class SandboxRefundRow(TypedDict):
    """sandbox_refunds (sql/003, case_id from sql/006)."""

    refund_id: str
    charge_id: str
    customer_id: str
    amount: Decimal
    currency: str
    idempotency_key: str
    reason: str
    created_at: datetime
    case_id: str | None


class SandboxCreditRow(TypedDict):
    """sandbox_credits (sql/003, case_id from sql/006)."""

    credit_id: str
    customer_id: str
    amount: Decimal
    currency: str
    idempotency_key: str
    reason: str
    created_at: datetime
    case_id: str | None


class ArchivePassRow(TypedDict):
    """archive_passes (sql/012): one retention pass."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    trigger: str
    retention_days: int
    retention_max: int
    partitions_before: int | None
    selected: int
    archived: int
    skipped_changed: int
    keys_deleted: int
    keys_restored: int
    runs_deleted: int
    event_rows_removed: int
    partitions_after: int | None
    error: str | None


# Each table's row type, for the test that compares them with the migrated schema.
TABLE_ROWS: dict[str, type] = {
    "workflow_states": WorkflowStateRow,
    "dispute_events": EventRow,
    "proposals": ProposalRow,
    "check_results": CheckResultRow,
    "reviewers": ReviewerRow,
    "review_decisions": ReviewDecisionRow,
    "executions": ExecutionRow,
    "dispute_actions": DisputeActionRow,
    "sandbox_refunds": SandboxRefundRow,
    "sandbox_credits": SandboxCreditRow,
    "archive_passes": ArchivePassRow,
}
