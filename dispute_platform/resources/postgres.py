"""The platform's PostgreSQL as a Dagster resource."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from dispute_platform.store.db import Database


class PostgresResource(ConfigurableResource):
    """`database_url` is normally an `EnvVar("DATABASE_URL")`; with none, the embedded server
    under `pgdata` is used (started on first use, shared by every process on the machine)."""

    database_url: str | None = Field(default=None, description="libpq or SQLAlchemy-style URL.")
    pgdata: str = Field(default=".dispute_platform/pgdata", description="Embedded server's data folder.")
    max_connections: int | None = Field(
        default=None,
        ge=1,
        description="Pool size per process: as many connections as the busiest step's threads use at once "
        "(build_resources passes Settings.postgres_connections; unset: the pool's own default).",
    )

    @cached_property
    def url(self) -> str:
        if self.database_url:
            return self.database_url
        from dispute_platform.store.embedded import embedded_database_url

        return embedded_database_url(Path(self.pgdata))

    @cached_property
    def db(self) -> Database:
        if self.max_connections is None:
            return Database(self.url)
        return Database(self.url, maxconn=self.max_connections)
