"""The embedded default: a real PostgreSQL 16 from the `pgserver` package, data under a local
folder, shared by every CLI command that runs on the same folder; the last one to end stops it.

pgserver counts its users in `pgdata/.handle_pids.json` and stops the server when the last of
them releases it, but only from an `atexit` hook. A process ended by SIGTERM or SIGKILL never
runs that hook, so its pid stayed in the list for good and no later command was ever "the last":
the server ran forever. Here every command releases its handle explicitly when it ends
(`release_embedded_database`, called by `LocalServices.stop`), and pids of processes that are
gone are dropped from the list before anyone counts it.

The server runs as the system user `pgserver` when the CLI runs as root, in its own session: a
signal to the CLI never reaches it, so stopping it is always this module's job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import psycopg2

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

DATABASE_NAME = "dispute_platform"
_servers: dict[Path, PostgresServer] = {}  # keep handles alive for the life of this process


def _holder_alive(pid: int) -> bool:
    """A pid in the handle list still stands for a live Python process (pids are reused: a pid
    now owned by something that is not Python is a dead holder's)."""
    if pid == os.getpid():
        return True
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return "python" in " ".join(process.cmdline()[:2]).lower()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def prune_dead_holders(pgdata: Path) -> list[int]:
    """Drop the pids of processes that ended without releasing the server; returns them."""
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList

    handles = DiskList(pgdata.resolve() / ".handle_pids.json")
    with PostgresServer._lock:
        pids = handles.get()
        dead = [pid for pid in pids if not _holder_alive(pid)]
        if dead:
            handles.put([pid for pid in pids if pid not in dead])
    return dead


def embedded_database_url(pgdata: Path) -> str:
    from pgserver.postgres_server import get_server  # imported here: a configured DATABASE_URL never needs it

    pgdata = pgdata.resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = _servers.get(pgdata)
    if server is None:
        prune_dead_holders(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
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


def release_embedded_database(pgdata: Path) -> bool:
    """Give up this process's handle; stop the server when no other live process holds one.
    Returns True when this call stopped it. Safe to call twice (pgserver's atexit hook, which
    still runs on a normal exit, then finds nothing to do)."""
    pgdata = pgdata.resolve()
    server = _servers.pop(pgdata, None)
    if server is None:
        return False
    prune_dead_holders(pgdata)
    pid = server.get_pid()
    server._cleanup()  # pgserver's own "last one stops it", now that dead holders are gone
    if pid is None:
        return False
    try:
        return not psutil.Process(pid).is_running()
    except psutil.NoSuchProcess:
        return True


def server_running(pgdata: Path) -> bool:
    """Whether a postmaster runs on `pgdata` (its postmaster.pid names a live process)."""
    pid_file = pgdata.resolve() / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
