"""The embedded defaults the CLI starts when nothing is configured: PostgreSQL (pgserver), a local
SQS-compatible endpoint (moto's server) with the three queues, and a DAGSTER_HOME whose
dagster.yaml puts Dagster's own storage on the same PostgreSQL server.

Whatever is configured in the environment is used as is; only the missing parts are started.
Everything is published to child processes (webserver, daemon, runs) through environment
variables, so they all see the same services.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import yaml

from dispute_platform.logs import dagster_python_logs_config
from dispute_platform.settings import REPO_ROOT, Settings, get_settings
from dispute_platform.store.db import Database, sqlalchemy_url

log = logging.getLogger(__name__)

QUEUE_NAMES = {
    "DISPUTE_EVENTS_QUEUE_URL": "dispute-events",
    "HUMAN_REVIEW_NOTIFICATIONS_QUEUE_URL": "human-review-notifications",
    "DISPUTE_EVENTS_DLQ_URL": "dispute-events-dlq",
}
# Redeliveries before SQS itself moves a message to the DLQ (the sensor normally deletes first).
MAX_RECEIVES = 5
# Dagster settings every process of a deployment shares (the CLI publishes them; deploy/ sets them).
# DAGSTER_EVENT_BATCH_SIZE: a step that materialises a range of partitions writes its per-partition
# events in one INSERT instead of one each (Postgres storage): the same events, so the UI shows the
# same; Dagster's empty-body floor for 250 partitions went from 71 s to 25 s on a busy machine.
DAGSTER_ENV_DEFAULTS = {"DAGSTER_EVENT_BATCH_SIZE": "1000"}


def terminate_tree(pid: int, timeout: float = 20.0) -> None:
    """Stop a process and everything it started. The Dagster daemon starts a code server (and
    runs) that do not always share its process group, so a group kill can leave them behind."""
    terminate_trees([pid], timeout)


def terminate_trees(pids: list[int], timeout: float = 20.0) -> None:
    """Stop several processes and all their descendants at once: SIGTERM to every one, then
    SIGKILL to whatever is left after `timeout` seconds (one wait for all, not one per tree)."""
    import psutil

    family: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            family += [*root.children(recursive=True), root]
        except psutil.NoSuchProcess:
            continue
    for process in family:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _sqs_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("sqs", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))


def create_local_queues(endpoint: str, *, suffix: str = "") -> dict[str, str]:
    """Create (idempotently) the queues, with a redrive policy from events to the DLQ, keyed by
    the settings' variable names. `suffix` is appended to each queue's name."""
    sqs = _sqs_client(endpoint)
    dlq_url = sqs.create_queue(QueueName=QUEUE_NAMES["DISPUTE_EVENTS_DLQ_URL"] + suffix)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events_url = sqs.create_queue(
        QueueName=QUEUE_NAMES["DISPUTE_EVENTS_QUEUE_URL"] + suffix,
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)})},
    )["QueueUrl"]
    review_url = sqs.create_queue(QueueName=QUEUE_NAMES["HUMAN_REVIEW_NOTIFICATIONS_QUEUE_URL"] + suffix)["QueueUrl"]
    return {
        "DISPUTE_EVENTS_QUEUE_URL": events_url,
        "HUMAN_REVIEW_NOTIFICATIONS_QUEUE_URL": review_url,
        "DISPUTE_EVENTS_DLQ_URL": dlq_url,
    }


def scratch_queues(endpoint: str) -> dict[str, str]:
    """A fresh set of the three queues under random names (tests, benchmarks): events, review, dlq."""
    urls = create_local_queues(endpoint, suffix=f"-{uuid.uuid4().hex[:8]}")
    return {
        "events": urls["DISPUTE_EVENTS_QUEUE_URL"],
        "review": urls["HUMAN_REVIEW_NOTIFICATIONS_QUEUE_URL"],
        "dlq": urls["DISPUTE_EVENTS_DLQ_URL"],
    }


def dagster_yaml(*, max_concurrent_runs: int = 2, llm_pool_default: int = 4) -> dict[str, Any]:
    """Dagster's instance config: Postgres storage (URL from the environment, so no password is
    written to disk), the queued run coordinator with a run limit, and pool limits."""
    return {
        "storage": {"postgres": {"postgres_url": {"env": "DAGSTER_POSTGRES_URL"}}},
        "concurrency": {
            "runs": {"max_concurrent_runs": max_concurrent_runs},
            "pools": {"default_limit": llm_pool_default},
        },
        "run_monitoring": {"enabled": True, "start_timeout_seconds": 180, "max_resume_run_attempts": 0},
        "telemetry": {"enabled": False},
        # No "join the community" dialog: it opens a second after the first page and covers the
        # UI an operator (or the browser test) is about to click.
        "nux": {"enabled": False},
        # Every run's logs also go to LOG_DIR/workflow.log (JSON lines, secrets redacted).
        "python_logs": dagster_python_logs_config(),
    }


class LocalServices(AbstractContextManager["LocalServices"]):
    """Start what is not configured; publish it all in os.environ for this process and its children."""

    def __init__(self, settings: Settings | None = None, *, sqs_port: int | None = None):
        self.settings = settings or get_settings()
        self.sqs_port = sqs_port or self.settings.local_sqs_port
        self._moto: Any = None
        self._embedded_pgdata: Path | None = None  # set when this process holds the embedded server
        self._published_urls: dict[str, str] = {}  # environment variables that point at it
        self.started: list[str] = []

    def __enter__(self) -> LocalServices:
        try:
            self.start()
        except BaseException:  # a signal or a failure half-way: give back what was started
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- parts --------------------------------------------------------------------------------
    def _database(self) -> str:
        if os.environ.get("DATABASE_URL"):
            return os.environ["DATABASE_URL"]
        from dispute_platform.store.embedded import embedded_database_url

        url = embedded_database_url(self.settings.pgdata)
        self._embedded_pgdata = self.settings.pgdata
        os.environ["DATABASE_URL"] = url
        self._published_urls["DATABASE_URL"] = url
        self.started.append(f"PostgreSQL (embedded, data in {self.settings.pgdata})")
        return url

    def _sqs(self) -> None:
        if os.environ.get("DISPUTE_EVENTS_QUEUE_URL"):
            return
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        os.environ.setdefault("AWS_REGION", self.settings.aws_region)
        endpoint = os.environ.get("SQS_ENDPOINT_URL") or f"http://127.0.0.1:{self.sqs_port}"
        if not _port_open("127.0.0.1", self.sqs_port) and not os.environ.get("SQS_ENDPOINT_URL"):
            from dispute_platform.local_sqs import start_local_sqs

            self._moto = start_local_sqs(self.sqs_port)
            self.started.append(f"SQS-compatible endpoint (moto) at {endpoint}")
        os.environ["SQS_ENDPOINT_URL"] = endpoint
        os.environ.update(create_local_queues(endpoint))

    def _dagster_home(self, database_url: str) -> Path:
        home = Path(os.environ.get("DAGSTER_HOME") or self.settings.home / "dagster").resolve()
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.exists():
            config.write_text(yaml.safe_dump(dagster_yaml(), sort_keys=False))
        else:
            # A home made by an older version: add the sections it lacks, keep what it has.
            current = yaml.safe_load(config.read_text()) or {}
            missing = {k: v for k, v in dagster_yaml().items() if k == "python_logs" and k not in current}
            if missing:
                config.write_text(yaml.safe_dump({**current, **missing}, sort_keys=False))
        os.environ["DAGSTER_HOME"] = str(home)
        if not os.environ.get("DAGSTER_POSTGRES_URL"):
            os.environ["DAGSTER_POSTGRES_URL"] = sqlalchemy_url(database_url)
            if self._embedded_pgdata is not None:
                self._published_urls["DAGSTER_POSTGRES_URL"] = os.environ["DAGSTER_POSTGRES_URL"]
        return home

    def start(self) -> LocalServices:
        for name, value in DAGSTER_ENV_DEFAULTS.items():
            os.environ.setdefault(name, value)
        url = self._database()
        self._sqs()
        self._dagster_home(url)
        os.environ.setdefault("DISPUTE_PLATFORM_HOME", str(self.settings.home))
        get_settings.cache_clear()
        self.settings = get_settings()
        return self

    def stop(self) -> None:
        """Stop what this process started. Whoever started children on these services (webserver,
        daemon, runs) stops them first: the embedded server goes down here when this process is
        the last one using it."""
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        if self._embedded_pgdata is not None:
            from dispute_platform.store.embedded import release_embedded_database

            pgdata, self._embedded_pgdata = self._embedded_pgdata, None
            release_embedded_database(pgdata)
            # A later LocalServices in this process (tests, CliRunner) must start it again, not
            # reach for a server that is gone.
            for name, value in self._published_urls.items():
                if os.environ.get(name) == value:
                    del os.environ[name]
            self._published_urls = {}

    def database(self) -> Database:
        return Database(os.environ["DATABASE_URL"])

    @property
    def workspace(self) -> Path:
        return REPO_ROOT / "workspace.yaml"
