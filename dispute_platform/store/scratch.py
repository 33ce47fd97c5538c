"""Throw-away databases on a PostgreSQL server, for the tests and the benchmarks: each needs a
fresh, isolated database and must leave nothing behind, even when it fails half-way."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name (a query string, e.g. pgserver's socket
    host, is kept)."""
    base, _, query = url.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


@contextmanager
def scratch_database(server_url: str, prefix: str, *, migrate: bool = False) -> Iterator[str]:
    """Create `<prefix>_<random>` on the server `server_url` points at (any database of it), yield
    its URL, and drop it afterwards, ending any session still connected to it. With `migrate`, the
    platform's migrations are applied first."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(with_database(server_url, "postgres"))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        url = with_database(server_url, name)
        if migrate:
            from dispute_platform.store import migrations
            from dispute_platform.store.db import Database

            db = Database(url)
            try:
                migrations.apply(db)
            finally:
                db.close()
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
