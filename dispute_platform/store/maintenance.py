"""Vacuum what the archive pass churns, on a server whose autovacuum is off.

The pass deletes Dagster's keys, runs and event rows every hour and marks platform rows archived
(an update). PostgreSQL reclaims the space of deleted and updated rows only by vacuuming; with the
server's `autovacuum` on (PostgreSQL's default, and the embedded server's) nothing is needed here.
With it off (seen on a shared development server), the dead rows pile up: after 20 simulated days
at 10,000 disputes a day `event_logs` held 114,747 live rows in 1.9 GB (1,130,301 dead), and every
pass got slower. Then, after a pass, the tables it churned are vacuumed by autovacuum's own rule
(more dead rows than 50 + 20% of the live ones), so their size stays bounded too.

A table the connecting role may not vacuum is skipped by PostgreSQL with a warning; a failure here
is logged and never fails the pass (its work is done and recorded by then).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from dispute_platform.store.db import libpq_url

log = logging.getLogger(__name__)

# Dagster's tables the pass deletes from (dagster-postgres 0.29), and the platform's it updates.
DAGSTER_CHURNED = ("event_logs", "dynamic_partitions", "runs", "run_tags", "asset_event_tags")
PLATFORM_CHURNED = ("workflow_states",)
THRESHOLD, SCALE_FACTOR = 50, 0.2  # autovacuum_vacuum_threshold / _scale_factor defaults


@dataclass(frozen=True)
class TableRows:
    name: str
    live: int
    dead: int


def due_for_vacuum(tables: Sequence[TableRows], *, threshold: int = THRESHOLD, scale: float = SCALE_FACTOR) -> list[str]:
    """The tables autovacuum would vacuum now: more dead rows than threshold + scale x live rows."""
    return [t.name for t in tables if t.dead > threshold + scale * t.live]


def vacuum_if_autovacuum_off(url: str, tables: Sequence[str], schema: str | None = None) -> list[str]:
    """Vacuum (and analyse) those of `tables` (in `schema`, default the connection's current
    schema) that are due, if the server's autovacuum is off. Returns the tables vacuumed."""
    try:
        conn = psycopg2.connect(libpq_url(url), connect_timeout=10, application_name="dispute_platform:vacuum")
    except psycopg2.Error:
        log.warning("vacuum: cannot connect", exc_info=True)
        return []
    try:
        conn.autocommit = True  # VACUUM cannot run inside a transaction
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('autovacuum') = 'on'")
            row = cur.fetchone()
            if row is None or row[0]:
                return []
            cur.execute(
                """SELECT schemaname, relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables
                   WHERE relname = ANY(%s) AND schemaname = COALESCE(%s, current_schema())""",
                (list(tables), schema),
            )
            found = {r[1]: (r[0], TableRows(r[1], r[2], r[3])) for r in cur.fetchall()}
            done: list[str] = []
            for name in due_for_vacuum([rows for _, rows in found.values()]):
                cur.execute(sql.SQL("VACUUM (ANALYZE) {}.{}").format(sql.Identifier(found[name][0]), sql.Identifier(name)))
                done.append(name)
            return done
    except psycopg2.Error:
        log.warning("vacuum after the archive pass failed", exc_info=True)
        return []
    finally:
        conn.close()
