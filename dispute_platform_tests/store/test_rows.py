"""The typed rows of store/ say what the database gives: every table row type has exactly the
table's columns, with the Python type psycopg2 returns for each and `| None` where the column is
nullable; every query-shaped row type has exactly the columns its query selects."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from dispute_platform.store import (
    actions,
    audit,
    calibration,
    desk,
    history,
    proposals,
    retention,
    reviewers,
    sandbox,
    states,
    workflow_states,
)
from dispute_platform.store.db import Cursor, Database
from dispute_platform.store.rows import TABLE_ROWS

# information_schema data_type -> the Python type psycopg2 gives a value of it.
PY_TYPES = {
    "integer": int, "bigint": int, "smallint": int, "numeric": Decimal, "real": float, "boolean": bool,
    "character varying": str, "character": str, "text": str, "uuid": str,
    "timestamp with time zone": datetime, "jsonb": (dict, list),
}  # fmt: skip


def split_optional(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        assert len(rest) == 1
        return rest[0], True
    return hint, False


@pytest.mark.parametrize("table", sorted(TABLE_ROWS))
def test_table_row_types_match_the_schema(db: Database, table: str) -> None:
    columns = db.fetch_all(
        """SELECT column_name, data_type, is_nullable FROM information_schema.columns
           WHERE table_schema = 'dispute_platform' AND table_name = %s""",
        (table,),
    )
    hints = typing.get_type_hints(TABLE_ROWS[table])
    assert set(hints) == {c["column_name"] for c in columns}
    for column in columns:
        hint, optional = split_optional(hints[column["column_name"]])
        assert optional == (column["is_nullable"] == "YES"), column
        origin = typing.get_origin(hint) or hint
        expected = PY_TYPES[column["data_type"]]
        assert origin in (expected if isinstance(expected, tuple) else (expected,)), column


class Recording:
    """A cursor that keeps the column names of the last statement's result."""

    def __init__(self, cur: Cursor) -> None:
        self._cur = cur
        self.columns: list[str] = []

    def execute(self, query: str, vars: Any = None) -> None:
        self._cur.execute(query, vars)
        description = self._cur.description  # type: ignore[attr-defined]
        self.columns = [d.name for d in description] if description else []

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> Any:
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount


QUERIES: list[tuple[str, Callable[[Any], object], type]] = [
    ("overdue_reviews", lambda c: workflow_states.overdue_reviews(c, 1.0), workflow_states.OverdueReviewRow),
    ("pending_reviews", workflow_states.pending_reviews, workflow_states.PendingReviewRow),
    ("token_totals", lambda c: proposals.token_totals(c, ["x"]), proposals.TokenTotalsRow),
    ("calls_since", lambda c: proposals.calls_since(c, None), proposals.ProposalCallRow),
    ("list_reviewers", reviewers.list_reviewers, reviewers.ReviewerListRow),
    ("decision_of", lambda c: reviewers.decision_of(c, "x", 1), reviewers.DecisionSummaryRow),
    ("decided_awaiting_execution", reviewers.decided_awaiting_execution, reviewers.AwaitingExecutionRow),
    ("historical_counts", history.historical_counts, history.HistoricalCountRow),
    ("archived_counts", retention.archived_counts, retention.ArchivedCountsRow),
    ("review_queue", lambda c: desk.review_queue(c, sla_hours=24), desk.ReviewQueueRow),
    ("auto_approval", lambda c: actions.auto_approval(c, "x"), actions.AutoApprovalRow),
    ("sampled_awaiting_review", actions.sampled_awaiting_review, actions.SampledApprovalRow),
    ("audit_trail", lambda c: audit.audit_trail(c, "x"), audit.AuditRow),
    ("latest_calibration", calibration.latest_calibration, calibration.CalibrationRow),
    ("reviewed_proposals", calibration.reviewed_proposals, calibration.ReviewedProposalRow),
    ("refunds_on", lambda c: sandbox.refunds_on(c, ["x"]), sandbox.RefundOnChargeRow),
    ("status_summary", states.status_summary, states.StatusSummaryRow),
]


@pytest.mark.parametrize(("name", "query", "row_type"), QUERIES, ids=[q[0] for q in QUERIES])
def test_query_row_types_name_the_selected_columns(
    db: Database, name: str, query: Callable[[Any], object], row_type: type
) -> None:
    def run(cur: Cursor) -> list[str]:
        recording = Recording(cur)
        query(recording)
        return recording.columns

    assert sorted(db.transact(run)) == sorted(typing.get_type_hints(row_type))
