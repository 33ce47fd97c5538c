"""Shared fixtures: a real PostgreSQL database per test session, a real local SQS endpoint (moto's
server over HTTP), real Chroma folders and the real packaged embedding model.

PostgreSQL: TEST_DATABASE_ADMIN_URL (default: the machine's server at 127.0.0.1:5432) is used to
create a throw-away database; when no server answers, an embedded pgserver is started instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("STEP_RETRY_DELAY_SECONDS", "0")  # retries still happen, without the wait

from dispute_platform.local import scratch_queues  # noqa: E402
from dispute_platform.store.db import Database  # noqa: E402
from dispute_platform.store.scratch import scratch_database  # noqa: E402

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PLATFORM_TABLES = (
    "workflow_states", "dispute_events", "rejected_events", "audit_log", "proposals", "check_results",
    "reviewers", "review_decisions", "executions", "proposal_cache", "sandbox_refunds", "sandbox_credits",
    "historical_resolutions", "proposal_calibrations", "decision_tickets", "dispute_actions", "archive_passes",
    "run_disputes",
)  # fmt: skip


def _admin_url(tmp_root: Path) -> str:
    try:
        psycopg2.connect(ADMIN_URL, connect_timeout=3).close()
        return ADMIN_URL
    except psycopg2.OperationalError:
        import pgserver

        server = pgserver.get_server(tmp_root / "pgdata", cleanup_mode="stop")
        _admin_url.server = server  # type: ignore[attr-defined]  # keep it alive for the session
        return server.get_uri("postgres")


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with scratch_database(_admin_url(tmp_path_factory.mktemp("pg")), f"dp_test_{os.getpid()}", migrate=True) as url:
        yield url


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    database.transact(lambda cur: cur.execute(f"TRUNCATE {', '.join(PLATFORM_TABLES)} RESTART IDENTITY CASCADE"))
    yield database
    database.close()


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    from dispute_platform.local_sqs import start_local_sqs  # the endpoint the CLI starts

    server = start_local_sqs(0)
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def queues(sqs_endpoint: str) -> dict[str, str]:
    """Fresh queues for one test: events (with a redrive policy to the DLQ), review, DLQ."""
    return scratch_queues(sqs_endpoint)


@pytest.fixture
def sqs(sqs_endpoint: str, queues: dict[str, str]):
    from dispute_platform.resources.sqs import SQSResource

    return SQSResource(
        endpoint_url=sqs_endpoint,
        dispute_events_queue_url=queues["events"],
        human_review_queue_url=queues["review"],
        dead_letter_queue_url=queues["dlq"],
        wait_time_seconds=0,
    )


def drain(sqs, queue_url: str) -> list[str]:
    """Every body left on a queue (received and deleted)."""
    bodies: list[str] = []
    for batch in sqs.receive_batches(max_messages=10_000, budget_seconds=10, queue_url=queue_url):
        bodies += [m.body for m in batch]
        sqs.delete(batch, queue_url)
    return bodies
