"""The rows the reports are computed from (the only I/O of the report code)."""

from __future__ import annotations

from datetime import date

import polars as pl

from dispute_platform.reports.costs import calls_frame, since_start
from dispute_platform.store.db import Database

CALLS_SQL = """
SELECT p.case_id, p.model, p.input_tokens, p.output_tokens, p.cost_usd, p.cache_hit, p.created_at,
       -- Requests the provider may bill (a re-ask and a timed-out attempt are requests too); a
       -- reply from the cache made none. Proposals from before the field: one.
       CASE WHEN p.cache_hit THEN 0 ELSE COALESCE((p.proposal->>'requests')::int, 1) END AS requests,
       CASE WHEN p.cache_hit THEN 0 ELSE COALESCE((p.proposal->>'estimated_cost_usd')::numeric, 0) END AS estimated_cost_usd,
       w.dispute_type, w.segment, w.status
FROM proposals p JOIN workflow_states w ON w.case_id = p.case_id
WHERE p.created_at >= COALESCE(%s, '-infinity'::timestamptz)
ORDER BY p.created_at, p.case_id, p.version
"""


def load_calls(db: Database, since: date | None = None) -> pl.DataFrame:
    """One row per proposal since `since` (a UTC day), with its dispute's type, segment and status."""
    return calls_frame(db.fetch_all(CALLS_SQL, (since_start(since),)))
