"""A dispute's cost totals and per-service breakdown (columns of `workflow_states`)."""

from __future__ import annotations

from decimal import Decimal

from dispute_platform.store.db import Cursor


def add_cost(cur: Cursor, case_id: str, item: str, amount: Decimal, *, llm: bool = False) -> None:
    """Add to a dispute's cost totals and its per-service breakdown."""
    cur.execute(
        """UPDATE workflow_states SET
             llm_cost = llm_cost + %s,
             total_cost = total_cost + %s,
             cost_breakdown = jsonb_set(cost_breakdown, ARRAY[%s],
                 to_jsonb(COALESCE((cost_breakdown ->> %s)::numeric, 0) + %s), true),
             updated_at = now()
           WHERE case_id = %s""",
        (amount if llm else 0, amount, item, item, amount, case_id),
    )
