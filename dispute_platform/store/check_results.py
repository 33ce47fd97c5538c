"""The `check_results` table: the blocking cap checks of each proposal version (sql/002)."""

from __future__ import annotations

from decimal import Decimal
from typing import cast

from dispute_platform.store.db import Cursor
from dispute_platform.store.rows import CheckResultRow


def record_check(
    cur: Cursor, case_id: str, version: int, name: str, passed: bool, figure: Decimal, cap: Decimal, run_id: str | None
) -> None:
    cur.execute(
        """INSERT INTO check_results (case_id, proposal_version, check_name, passed, figure, cap, dagster_run_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (case_id, proposal_version, check_name) DO UPDATE
             SET passed = EXCLUDED.passed, figure = EXCLUDED.figure, cap = EXCLUDED.cap,
                 dagster_run_id = EXCLUDED.dagster_run_id, evaluated_at = now()""",
        (case_id, version, name, passed, figure, cap, run_id),
    )


def check_results(cur: Cursor, case_id: str, version: int) -> dict[str, CheckResultRow]:
    cur.execute("SELECT * FROM check_results WHERE case_id = %s AND proposal_version = %s", (case_id, version))
    return {row["check_name"]: row for row in cast(list[CheckResultRow], cur.fetchall())}
