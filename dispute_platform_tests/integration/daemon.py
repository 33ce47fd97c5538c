"""A real Dagster deployment for end-to-end tests: `dagster-daemon run` as a subprocess with its
own Postgres-backed instance (a fresh database, so sensor cursors never leak between tests), the
test's platform database, the moto SQS endpoint and a Chroma folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from dispute_platform.local import dagster_yaml, terminate_tree
from dispute_platform.settings import REPO_ROOT
from dispute_platform.store.db import sqlalchemy_url
from dispute_platform.store.scratch import scratch_database


@dataclass
class Deployment:
    home: Path
    env: dict[str, str]
    daemon: subprocess.Popen
    log: Path

    def daemon_log(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


@contextmanager
def deployment(
    pg_url: str,
    sqs,
    home: Path,
    *,
    seeded_chroma: Path,
    world: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Deployment]:
    with scratch_database(pg_url, "dp_dagster") as dagster_db:
        yield from _deployment(dagster_db, pg_url, sqs, home, seeded_chroma=seeded_chroma, world=world, extra_env=extra_env)


def _deployment(
    dagster_db: str,
    pg_url: str,
    sqs,
    home: Path,
    *,
    seeded_chroma: Path,
    world: Path | None,
    extra_env: dict[str, str] | None,
) -> Iterator[Deployment]:
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(dagster_yaml(max_concurrent_runs=2)))
    shutil.copytree(seeded_chroma, home / "chroma")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_POSTGRES_URL": sqlalchemy_url(dagster_db),
        "DATABASE_URL": pg_url,
        "DISPUTE_PLATFORM_HOME": str(home),
        "CHROMA_DB_PATH": str(home / "chroma"),
        "EMAIL_OUTBOX": str(home / "outbox"),
        "SQS_ENDPOINT_URL": sqs.endpoint_url,
        "DISPUTE_EVENTS_QUEUE_URL": sqs.dispute_events_queue_url,
        "HUMAN_REVIEW_NOTIFICATIONS_QUEUE_URL": sqs.human_review_queue_url,
        "DISPUTE_EVENTS_DLQ_URL": sqs.dead_letter_queue_url,
        "SQS_SENSOR_INTERVAL_SECONDS": "1",
        "REVIEW_SENSOR_INTERVAL_SECONDS": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        **({"SANDBOX_DATA": str(world)} if world else {}),
        **(extra_env or {}),
    }
    log = home / "daemon.log"
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
        cwd=REPO_ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield Deployment(home, env, daemon, log)
    finally:
        terminate_tree(daemon.pid)  # the daemon, its code server and any run still going
        daemon.wait(timeout=5)


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, deployment: Deployment | None = None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    detail = f"\n--- daemon log ---\n{deployment.daemon_log()}" if deployment else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


@contextmanager
def api_server(app) -> Iterator[str]:
    """The decision endpoint on a real socket (uvicorn in a thread)."""
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def dagster_webserver(env: dict[str, str], log: Path, *, timeout: float = 180.0) -> Iterator[str]:
    """`dagster-webserver` on a free port over the workspace, with `env` (DAGSTER_HOME and the
    platform's variables); yields its address once it answers and its code location has loaded."""
    import json
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-h", "127.0.0.1", "-p", str(port),
         "-w", str(REPO_ROOT / "workspace.yaml")],
        cwd=REPO_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    query = json.dumps({"query": "{ workspaceOrError { ... on Workspace { locationEntries { name "
                        "locationOrLoadError { __typename } } } } }"}).encode()  # fmt: skip

    def loaded() -> bool:
        try:
            request = urllib.request.Request(url + "/graphql", data=query, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as answer:
                entries = json.load(answer)["data"]["workspaceOrError"]["locationEntries"]
        except OSError:
            return False
        states = [(e.get("locationOrLoadError") or {}).get("__typename") for e in entries]
        if "PythonError" in states:
            raise AssertionError(f"the code location failed to load:\n{log.read_text(errors='replace')[-5000:]}")
        return bool(entries) and all(s == "RepositoryLocation" for s in states)

    try:
        deadline = time.monotonic() + timeout
        while not loaded():
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dagster-webserver did not start:\n{log.read_text(errors='replace')[-5000:]}")
            time.sleep(1)
        yield url
    finally:
        terminate_tree(server.pid)
        server.wait(timeout=5)
