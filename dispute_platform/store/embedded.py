"""The embedded default: a real PostgreSQL 16 from the `pgserver` package, data under a local
folder. It stops when the last process that asked for it exits, so the CLI process that starts
it outlives the webserver, daemon and runs that use it."""

from __future__ import annotations

from pathlib import Path

import psycopg2

DATABASE_NAME = "dispute_platform"
_servers: dict[Path, object] = {}  # keep handles alive for the life of this process


def embedded_database_url(pgdata: Path) -> str:
    import pgserver  # imported here: a configured DATABASE_URL never needs it

    pgdata = pgdata.resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = _servers.get(pgdata)
    if server is None:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        _servers[pgdata] = server
    conn = psycopg2.connect(server.get_uri("postgres"))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    finally:
        conn.close()
    return server.get_uri(DATABASE_NAME)
