"""Which disputes a sensor-requested run is for (sql/013_run_disputes.sql).

A run request names a batch (its run key, also the run's `dispute_platform/batch` tag); the rows
say which case ids the batch carries. The sensor writes them before it hands the request to
Dagster, idempotently, so a tick repeated after a crash writes the same rows again.
"""

from __future__ import annotations

from collections.abc import Sequence

from dispute_platform.store.db import Cursor


def record_batch(cur: Cursor, batch: str, case_ids: Sequence[str], decision_ids: Sequence[int | None] | None = None) -> None:
    """The batch's disputes in partition order (a decision already carried by another batch is
    not claimed twice: the row is not written)."""
    decisions = list(decision_ids) if decision_ids is not None else [None] * len(case_ids)
    cur.execute(
        """INSERT INTO run_disputes (batch, case_id, decision_id, position)
           SELECT %s, c, d, (n - 1)::int FROM unnest(%s::text[], %s::bigint[]) WITH ORDINALITY AS u(c, d, n)
           ON CONFLICT DO NOTHING""",
        (batch, list(case_ids), decisions),
    )


def batch_disputes(cur: Cursor, batch: str) -> set[str]:
    cur.execute("SELECT case_id FROM run_disputes WHERE batch = %s", (batch,))
    return {row["case_id"] for row in cur.fetchall()}


def claimed_decisions(cur: Cursor, decided: Sequence[tuple[str, int]]) -> dict[int, str]:
    """decision id -> the batch that already carries it, for (case id, decision id) pairs."""
    cur.execute(
        """SELECT r.decision_id, r.batch FROM run_disputes r
           JOIN unnest(%s::text[], %s::bigint[]) AS d(case_id, decision_id)
             ON r.decision_id = d.decision_id AND r.case_id = d.case_id""",
        ([c for c, _ in decided], [d for _, d in decided]),
    )
    return {row["decision_id"]: row["batch"] for row in cur.fetchall()}


def batch_members(cur: Cursor, batches: Sequence[str]) -> dict[str, list[str]]:
    """Each of `batches` with its disputes in partition order."""
    cur.execute(
        """SELECT batch, array_agg(case_id ORDER BY position, case_id) AS case_ids
           FROM run_disputes WHERE batch = ANY(%s) GROUP BY batch""",
        (list(batches),),
    )
    return {row["batch"]: list(row["case_ids"]) for row in cur.fetchall()}
