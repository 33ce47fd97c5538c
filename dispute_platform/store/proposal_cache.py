"""The `proposal_cache` table: model replies keyed on a digest of the prompt (sql/002)."""

from __future__ import annotations

from typing import Any

from dispute_platform.store.audit import jsonb
from dispute_platform.store.db import Cursor


def cache_get(cur: Cursor, key: str) -> dict[str, Any] | None:
    cur.execute("UPDATE proposal_cache SET hits = hits + 1 WHERE cache_key = %s RETURNING reply", (key,))
    row = cur.fetchone()
    return row["reply"] if row else None


def cache_put(cur: Cursor, key: str, case_id: str, dispute_type: str, model: str, reply: dict[str, Any]) -> None:
    cur.execute(
        """INSERT INTO proposal_cache (cache_key, case_id, dispute_type, model, reply) VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (cache_key) DO NOTHING""",
        (key, case_id, dispute_type, model, jsonb(reply)),
    )


def cache_invalidate_type(cur: Cursor, dispute_type: str) -> int:
    cur.execute("DELETE FROM proposal_cache WHERE dispute_type = %s", (dispute_type,))
    return cur.rowcount
