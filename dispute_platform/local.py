"""The embedded defaults the CLI starts when nothing is configured: PostgreSQL (pgserver), a local
SQS-compatible endpoint (moto's server) with the three queues, and a DAGSTER_HOME whose
dagster.yaml puts Dagster's own storage on the same PostgreSQL server.

Whatever is configured is used as is; only the missing parts are started. `LocalServices` returns
what it started as a `Settings` (for this process) and as environment variables (for the child
processes: webserver, daemon, runs), so they all see the same services.
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
from pydantic import SecretStr

from dispute_platform.logs import dagster_python_logs_config
from dispute_platform.settings import REPO_ROOT, Settings
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


def _sqs_client(endpoint: str, region: str) -> Any:
    import boto3

    # A local endpoint takes any credentials.
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
    )


def create_local_queues(endpoint: str, *, suffix: str = "", region: str = "us-east-1") -> dict[str, str]:
    """Create (idempotently) the queues, with a redrive policy from events to the DLQ, keyed by
    the settings' variable names. `suffix` is appended to each queue's name."""
    sqs = _sqs_client(endpoint, region)
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


def database(settings: Settings, **options: Any) -> Database:
    """The platform database `settings` name (after `LocalServices.start()`, the embedded one if
    none was configured)."""
    if settings.database_url is None:
        raise RuntimeError("no DATABASE_URL: start LocalServices (or configure one) first")
    return Database(settings.database_url.get_secret_value(), **options)


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
    """Start what is not configured and say what was started; edit nothing in the environment.

    After `start()`, `settings` is the configuration with the started services filled in (what
    this process passes down), and `environment` holds the variables that point other processes
    at the same services (webserver, daemon, code server, runs: they read their own settings from
    the environment), plus what Dagster itself reads from the environment (DAGSTER_HOME,
    DAGSTER_POSTGRES_URL in dagster.yaml, the resources' `EnvVar` secrets). The command that
    owns the process decides where they go (`commands.shell.local_services`)."""

    def __init__(self, settings: Settings | None = None, *, sqs_port: int | None = None):
        self.configured = settings or Settings()
        self.settings = self.configured
        self.sqs_port = sqs_port or self.configured.local_sqs_port
        self.environment: dict[str, str] = {}
        self._moto: Any = None
        self._embedded_pgdata: Path | None = None  # set when this process holds the embedded server
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
        if self.configured.database_url is not None:
            return self.configured.database_url.get_secret_value()
        from dispute_platform.store.embedded import embedded_database_url

        url = embedded_database_url(self.configured.pgdata)
        self._embedded_pgdata = self.configured.pgdata
        self.started.append(f"PostgreSQL (embedded, data in {self.configured.pgdata})")
        return url

    def _sqs(self) -> dict[str, str]:
        configured = self.configured
        if configured.dispute_events_queue_url:
            return {}
        endpoint = configured.sqs_endpoint_url or f"http://127.0.0.1:{self.sqs_port}"
        if not configured.sqs_endpoint_url and not _port_open("127.0.0.1", self.sqs_port):
            from dispute_platform.local_sqs import start_local_sqs

            self._moto = start_local_sqs(self.sqs_port)
            self.started.append(f"SQS-compatible endpoint (moto) at {endpoint}")
        return {
            # The local endpoint takes any key; boto3 wants one.
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_REGION": configured.aws_region,
            "SQS_ENDPOINT_URL": endpoint,
            **create_local_queues(endpoint, region=configured.aws_region),
        }

    def _dagster_home(self) -> Path:
        home = self.configured.dagster_dir
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
        return home

    def start(self) -> LocalServices:
        url = self._database()
        queues = self._sqs()
        home = self._dagster_home()
        environment = {name: os.environ.get(name, value) for name, value in DAGSTER_ENV_DEFAULTS.items()}
        environment |= {
            "DATABASE_URL": url,
            "DAGSTER_HOME": str(home),
            "DAGSTER_POSTGRES_URL": os.environ.get("DAGSTER_POSTGRES_URL") or sqlalchemy_url(url),
            "DISPUTE_PLATFORM_HOME": str(self.configured.home),
            **queues,
        }
        self.environment = environment
        # What this process runs on: the configuration, with what was started filled in.
        self.settings = self.configured.model_copy(
            update={
                "database_url": SecretStr(url),
                "dagster_home": home,
                "dispute_platform_home": self.configured.home,
                "sqs_endpoint_url": queues.get("SQS_ENDPOINT_URL", self.configured.sqs_endpoint_url),
                "dispute_events_queue_url": queues.get("DISPUTE_EVENTS_QUEUE_URL", self.configured.dispute_events_queue_url),
                "human_review_notifications_queue_url": queues.get(
                    "HUMAN_REVIEW_NOTIFICATIONS_QUEUE_URL", self.configured.human_review_notifications_queue_url
                ),
                "dispute_events_dlq_url": queues.get("DISPUTE_EVENTS_DLQ_URL", self.configured.dispute_events_dlq_url),
            }
        )
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

    def database(self, **options: Any) -> Database:
        return database(self.settings, **options)

    @property
    def workspace(self) -> Path:
        return REPO_ROOT / "workspace.yaml"
