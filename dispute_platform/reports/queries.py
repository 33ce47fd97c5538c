"""The rows the reports are computed from (the only I/O of the report code; the SQL is in store/)."""

from __future__ import annotations

from datetime import date

import polars as pl

from dispute_platform.reports.costs import calls_frame, since_start
from dispute_platform.store.db import Database
from dispute_platform.store.proposals import calls_since


def load_calls(db: Database, since: date | None = None) -> pl.DataFrame:
    """One row per proposal since `since` (a UTC day), with its dispute's type, segment and status."""
    start = since_start(since)
    return calls_frame(db.transact(lambda cur: calls_since(cur, start)))
