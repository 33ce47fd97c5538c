"""A small PostgreSQL access layer over psycopg2 (already required by dagster-postgres).

Every platform table lives in the `dispute_platform` schema; connections put it first on the
search path. Writes go through `transact`, which retries a whole transaction when the server
went away (a restart, a failover): every write in the platform is idempotent, so re-running a
transaction body is safe, and a run survives a database restart instead of failing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, cast

import psycopg2
import psycopg2.errors
import psycopg2.extras
import psycopg2.pool

SCHEMA = "dispute_platform"
T = TypeVar("T")
log = logging.getLogger(__name__)

# One database row as the store's cursors return it: column name -> value.
Row = dict[str, Any]


class Cursor(Protocol):
    """What store functions use of the RealDictCursor that `Database.cursor` opens."""

    def execute(self, query: str, vars: Sequence[Any] | Mapping[str, Any] | None = None) -> None: ...

    def fetchone(self) -> Row | None: ...

    def fetchall(self) -> list[Row]: ...

    @property
    def rowcount(self) -> int: ...


class LockBusy(RuntimeError):
    """Another process holds a session lock longer than the caller would wait (retry later)."""


# Errors that mean "the connection is gone", not "your SQL is wrong".
_CONNECTION_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)


def libpq_url(url: str) -> str:
    """SQLAlchemy-style URLs (postgresql+psycopg2://) are accepted and handed to libpq plainly."""
    for prefix in ("postgresql+psycopg2://", "postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def sqlalchemy_url(url: str) -> str:
    """Dagster's storage needs psycopg2 named explicitly (SQLAlchemy 2.1 would pick psycopg 3,
    whose NOTIFY breaks Dagster's event log)."""
    return "postgresql+psycopg2://" + libpq_url(url)[len("postgresql://") :]


class PoolBusy(RuntimeError):
    """Every connection of the pool stayed in use for longer than the caller would wait."""


class Database:
    """`maxconn` connections at most; a thread that finds them all in use waits (up to
    `wait_seconds`) for one to come back, instead of failing as psycopg2's pool does ("connection
    pool exhausted"). Size it to the threads that use it at once (settings.postgres_connections)."""

    def __init__(self, url: str, *, maxconn: int = 8, schema: str = SCHEMA, wait_seconds: float = 120.0):
        self.url = libpq_url(url)
        self.schema = schema
        self._maxconn = maxconn
        self._wait_seconds = wait_seconds
        self._slots = threading.BoundedSemaphore(maxconn)
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._lock = threading.Lock()

    @property
    def maxconn(self) -> int:
        return self._maxconn

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = psycopg2.pool.ThreadedConnectionPool(
                    0,
                    self._maxconn,
                    self.url,
                    options=f"-c search_path={self.schema},public",
                    connect_timeout=10,
                    application_name="dispute_platform",
                )
            return self._pool

    @contextmanager
    def cursor(self) -> Iterator[Cursor]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        pool = self._get_pool()
        if not self._slots.acquire(timeout=self._wait_seconds):
            raise PoolBusy(f"all {self._maxconn} Postgres connections stayed busy for {self._wait_seconds:g}s")
        try:
            conn = pool.getconn()
        except BaseException:
            self._slots.release()
            raise
        broken = False
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                # psycopg2's stubs give a list of OrderedDict[Any, Any] rows, which no
                # list[dict[str, Any]] accepts (lists are invariant); the rows are str-keyed dicts.
                yield cast(Cursor, cur)
            conn.commit()
        except _CONNECTION_ERRORS:
            broken = True
            raise
        except BaseException:
            try:
                conn.rollback()
            except _CONNECTION_ERRORS:
                broken = True
            raise
        finally:
            try:
                pool.putconn(conn, close=broken or conn.closed != 0)
            finally:
                self._slots.release()

    def transact(self, fn: Callable[[Cursor], T], *, attempts: int = 8, max_wait: float = 30.0) -> T:
        """Run `fn(cursor)` in a transaction, again on a fresh connection if the server dropped
        it, waiting up to `max_wait` seconds in all (enough for a Postgres restart)."""
        delay, waited = 0.25, 0.0
        for attempt in range(1, attempts + 1):
            try:
                with self.cursor() as cur:
                    return fn(cur)
            except _CONNECTION_ERRORS as exc:
                if attempt == attempts or waited >= max_wait:
                    raise
                log.warning("database connection lost (%s); retrying transaction in %.2fs", exc.__class__.__name__, delay)
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def _connect_patiently(self, max_wait: float = 30.0) -> psycopg2.extensions.connection:
        """A dedicated connection, waiting out a server restart like `transact` does."""
        delay, waited = 0.25, 0.0
        while True:
            try:
                return psycopg2.connect(self.url, connect_timeout=10, application_name="dispute_platform-lock")
            except psycopg2.OperationalError as exc:
                if waited >= max_wait:
                    raise
                log.warning("database unreachable (%s); connecting again in %.2fs", exc.__class__.__name__, delay)
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 5.0)

    @contextmanager
    def session_lock(self, name: str, *, wait_seconds: float = 300.0) -> Iterator[None]:
        """Hold an advisory lock on `name` for the block, on a dedicated connection (not the
        pool's): when the process dies, its connection goes and the server releases the lock, so
        a crashed holder never strands it. Waits up to `wait_seconds` for another holder. (A server
        restart drops the lock with every session; the database's own constraints still hold.)"""
        conn = self._connect_patiently()
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SET lock_timeout = %s", (f"{int(wait_seconds * 1000)}ms",))
                try:
                    cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
                except psycopg2.errors.LockNotAvailable as exc:
                    raise LockBusy(f"{name} is held by another process for more than {wait_seconds:g}s") from exc
            yield
        finally:
            try:
                conn.close()  # closing the session releases its advisory locks
            except psycopg2.Error:
                pass

    def fetch_all(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[Row]:
        def run(cur: Cursor) -> list[Row]:
            cur.execute(sql, params)
            return cur.fetchall()

        return self.transact(run)

    def fetch_one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Row | None:
        def run(cur: Cursor) -> Row | None:
            cur.execute(sql, params)
            return cur.fetchone()

        return self.transact(run)

    def server_version(self) -> str:
        row = self.fetch_one("SHOW server_version")
        return str(row["server_version"]) if row is not None else "unknown"

    def ping(self) -> bool:
        try:
            return self.fetch_one("SELECT 1 AS ok") is not None
        except psycopg2.Error:
            return False

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None
