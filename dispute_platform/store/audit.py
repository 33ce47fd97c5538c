"""The append-only audit trail, and the JSON binding every store module uses."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TypedDict, cast

from psycopg2.extras import Json

from dispute_platform.store.db import Cursor


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


class AuditRow(TypedDict):
    """An audit_log row (sql/001) without its case id."""

    id: int
    step: str
    event: str
    actor: str
    details: dict[str, Any]
    dagster_run_id: str | None
    created_at: datetime


def audit_trail(cur: Cursor, case_id: str) -> list[AuditRow]:
    cur.execute(
        "SELECT id, step, event, actor, details, dagster_run_id, created_at FROM audit_log WHERE case_id = %s ORDER BY id",
        (case_id,),
    )
    return cast(list[AuditRow], cur.fetchall())
