"""Ordered SQL migrations from `sql/`, applied idempotently under an advisory lock."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

from dispute_platform.settings import REPO_ROOT
from dispute_platform.store.db import SCHEMA, Cursor, Database, Row

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x6469_7370  # "disp": serialises concurrent `setup` runs


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    migration: Migration
    applied_at: datetime | None
    checksum_matches: bool = True


def sql_dir() -> Path:
    return Path(os.environ.get("DISPUTE_PLATFORM_SQL_DIR", REPO_ROOT / "sql"))


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir()
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"{path.name}: migration files are named NNN_snake_case.sql")
        migrations.append(Migration(match.group(1), match.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {directory}")
    return migrations


def _ensure_bookkeeping(cur: Cursor) -> None:
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    cur.execute(
        f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations (
               version VARCHAR(16) PRIMARY KEY, name TEXT NOT NULL, checksum CHAR(64) NOT NULL,
               applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"""
    )


def status(db: Database, directory: Path | None = None) -> list[MigrationStatus]:
    def read(cur: Cursor) -> dict[str, Row]:
        cur.execute("SELECT to_regclass(%s) AS t", (f"{SCHEMA}.schema_migrations",))
        if cast(Row, cur.fetchone())["t"] is None:  # a SELECT without FROM: always a row
            return {}
        cur.execute(f"SELECT version, checksum, applied_at FROM {SCHEMA}.schema_migrations")  # noqa: S608 - SCHEMA is a module constant; values are parameters
        return {row["version"]: row for row in cur.fetchall()}

    applied = db.transact(read)
    return [
        MigrationStatus(
            m,
            applied[m.version]["applied_at"] if m.version in applied else None,
            m.version not in applied or applied[m.version]["checksum"] == m.checksum,
        )
        for m in discover(directory)
    ]


def apply(db: Database, directory: Path | None = None) -> list[Migration]:
    """Apply pending migrations, each in its own transaction; returns those applied now."""
    done: list[Migration] = []
    for migration in discover(directory):

        def step(cur: Cursor, migration: Migration = migration) -> bool:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            _ensure_bookkeeping(cur)
            cur.execute(f"SELECT checksum FROM {SCHEMA}.schema_migrations WHERE version = %s", (migration.version,))  # noqa: S608 - SCHEMA is a module constant; values are parameters
            row = cur.fetchone()
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise RuntimeError(
                        f"migration {migration.version}_{migration.name} was edited after it was applied; "
                        "add a new migration instead"
                    )
                return False
            cur.execute(f"SET LOCAL search_path TO {SCHEMA}, public")
            cur.execute(migration.sql)
            cur.execute(
                f"INSERT INTO {SCHEMA}.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",  # noqa: S608 - SCHEMA is a module constant; values are parameters
                (migration.version, migration.name, migration.checksum),
            )
            return True

        if db.transact(step):
            done.append(migration)
    return done


def reset(db: Database) -> None:
    """Drop everything the platform owns (its schema), leaving Dagster's tables alone."""

    def drop(cur: Cursor) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        cur.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")

    db.transact(drop)
