"""The append-only audit trail, and the JSON binding every store module uses."""

from __future__ import annotations

import json
from typing import Any

from psycopg2.extras import Json

from dispute_platform.store.db import Cursor, Row


def jsonb(value: Any) -> Json:
    return Json(value, dumps=lambda v: json.dumps(v, default=str))


def audit(
    cur: Cursor,
    case_id: str,
    step: str,
    event: str,
    details: dict[str, Any] | None = None,
    *,
    actor: str = "system",
    run_id: str | None = None,
) -> None:
    cur.execute(
        "INSERT INTO audit_log (case_id, step, event, actor, details, dagster_run_id) VALUES (%s, %s, %s, %s, %s, %s)",
        (case_id, step, event, actor, jsonb(details or {}), run_id),
    )


def audit_trail(cur: Cursor, case_id: str) -> list[Row]:
    cur.execute(
        "SELECT id, step, event, actor, details, dagster_run_id, created_at FROM audit_log WHERE case_id = %s ORDER BY id",
        (case_id,),
    )
    return cur.fetchall()
