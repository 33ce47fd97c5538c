"""Issue 15: when a CLI command ends (normally, by SIGTERM or by SIGINT) everything it started stops
within 30 s: the Dagster processes, the local SQS endpoint and the embedded PostgreSQL; when
several commands share the embedded server, the last one to end stops it.

Real processes: the real `dispute-platform` commands as subprocesses, with a scratch
DISPUTE_PLATFORM_HOME and no DATABASE_URL (so each starts the embedded server from pgserver),
watched with psutil.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

from dispute_platform.settings import REPO_ROOT
from dispute_platform.store.embedded import server_running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GRACE_SECONDS = 30.0
# Everything that would point a command at already running services instead of starting its own.
_CONFIGURED = (
    "DATABASE_URL", "DAGSTER_POSTGRES_URL", "DAGSTER_HOME", "SQS_ENDPOINT_URL", "DISPUTE_EVENTS_QUEUE_URL",
    "HUMAN_REVIEW_NOTIFICATIONS_QUEUE_URL", "DISPUTE_EVENTS_DLQ_URL", "CHROMA_DB_PATH", "LOG_DIR", "EMAIL_OUTBOX",
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Command:
    """One real CLI process, and every process it ever had under it."""

    started: list[Command] = []

    def __init__(self, home: Path, *args: str, api_port: int | None = None):
        self.home = home
        self.api_port = api_port or _free_port()
        env = {k: v for k, v in os.environ.items() if k not in _CONFIGURED}
        env |= {
            "DISPUTE_PLATFORM_HOME": str(home),
            "LOCAL_SQS_PORT": str(_free_port()),
            "API_PORT": str(self.api_port),
            "LOG_DIR": str(home / "logs"),
            "PYTHONUNBUFFERED": "1",
        }
        self.log = home / f"cli-{args[0]}-{self.api_port}.log"
        home.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dispute_platform.cli", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # signals reach the CLI only when the test sends them
        )
        self.seen: dict[int, psutil.Process] = {}
        Command.started.append(self)

    def watch(self) -> None:
        try:
            root = psutil.Process(self.process.pid)
            for p in [root, *root.children(recursive=True)]:
                # The embedded server (pg_ctl and postgres) is checked on its own: the last
                # command sharing it stops it, not necessarily the one that happened to start it.
                if p.name() not in ("postgres", "pg_ctl", "sh"):
                    self.seen.setdefault(p.pid, p)
        except psutil.NoSuchProcess:
            pass

    def wait_until(self, predicate, what: str, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.watch()
            if self.process.poll() is not None:
                raise AssertionError(f"{what}: the command ended early:\n{self.output()}")
            if predicate():
                self.watch()
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def leftovers(self) -> list[str]:
        alive = []
        for process in self.seen.values():
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{process.pid} {' '.join(process.cmdline())[:150]}")
            except psutil.NoSuchProcess:
                pass
        return alive

    def stop(self, sig: int) -> float:
        """Send `sig`; return the seconds until the command and all it started were gone."""
        self.watch()
        started = time.monotonic()
        self.process.send_signal(sig)
        self.process.wait(timeout=GRACE_SECONDS)
        while self.leftovers() and time.monotonic() - started < GRACE_SECONDS:
            time.sleep(0.2)
        return time.monotonic() - started


@pytest.fixture
def home():
    """A scratch DISPUTE_PLATFORM_HOME outside pytest's temp root: pytest resets
    /tmp/pytest-of-<user> to mode 0700 whenever a session starts, and the embedded server runs as
    the system user `pgserver` (the CLI runs as root here), which then can no longer reach its
    data folder."""
    folder = Path(tempfile.mkdtemp(prefix="dp-shutdown-"))
    folder.chmod(0o755)
    yield folder / "home"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_command_outlives_its_test(home):  # needs `home`: stop the commands before their folder goes
    """A test that fails half-way still stops the commands it started (and so checks nothing
    is left for the next test on this machine)."""
    yield
    for command in list(Command.started):
        if command.process.poll() is None:
            command.process.send_signal(signal.SIGTERM)
            try:
                command.process.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                command.process.kill()
                command.process.wait()
    Command.started.clear()


def _ui_up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _health(command: Command) -> dict:
    try:
        return httpx.get(f"http://127.0.0.1:{command.api_port}/health", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return {}


def _postgres_on(pgdata: Path) -> list[int]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "postgres" in (process.info["name"] or "") and str(pgdata.resolve()) in cmdline:
            found.append(process.pid)
    return found


def _assert_all_down(command: Command, seconds: float) -> None:
    pgdata = command.home / "pgdata"
    deadline = time.monotonic() + max(0.0, GRACE_SECONDS - seconds)
    while (server_running(pgdata) or _postgres_on(pgdata)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not command.leftovers(), f"left running: {command.leftovers()}\n{command.output()}"
    assert not server_running(pgdata) and not _postgres_on(pgdata), f"embedded PostgreSQL still up\n{command.output()}"
    assert seconds < GRACE_SECONDS


def test_doctor_ending_normally_stops_the_embedded_postgres(home):
    doctor = Command(home, "doctor")
    doctor.process.wait(timeout=240)
    assert "PostgreSQL" in doctor.output()
    _assert_all_down(doctor, 0.0)


def test_api_stops_with_everything_on_sigterm(home):
    api = Command(home, "api")
    api.wait_until(lambda: _health(api).get("database") is True, "the endpoint to answer")
    assert server_running(home / "pgdata")
    _assert_all_down(api, api.stop(signal.SIGTERM))
    assert api.process.returncode == 128 + signal.SIGTERM


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_runs_ui_daemon_and_desk_and_stops_them_all(home, sig):
    ui_port = _free_port()
    serve = Command(home, "serve", "--ui-port", str(ui_port))
    # The daemon's heartbeat reaches /health: one command serves the desk and executes decisions.
    serve.wait_until(
        lambda: (_health(serve).get("daemon") or {}).get("running") is True and _ui_up(ui_port),
        "a live daemon in /health and the Dagster UI",
    )
    assert httpx.get(f"http://127.0.0.1:{serve.api_port}/desk/", timeout=5, follow_redirects=True).url.path == "/desk/sign-in"
    names = " ".join(" ".join(p.cmdline()) for p in serve.seen.values() if p.is_running())
    assert "dagster-webserver" in names and "dagster-daemon" in names and "api grpc" in names
    _assert_all_down(serve, serve.stop(sig))


def test_dev_stops_dagster_dev_and_postgres_on_sigterm(home):
    ui_port = _free_port()
    dev = Command(home, "dev", "--port", str(ui_port))
    dev.wait_until(lambda: _ui_up(ui_port), "the Dagster UI")
    _assert_all_down(dev, dev.stop(signal.SIGTERM))


def test_the_last_command_sharing_the_embedded_postgres_stops_it(home):
    first = Command(home, "api")
    first.wait_until(lambda: _health(first).get("database") is True, "the first endpoint")
    second = Command(home, "api")
    second.wait_until(lambda: _health(second).get("database") is True, "the second endpoint")

    first.stop(signal.SIGTERM)
    assert not first.leftovers()
    assert server_running(home / "pgdata"), "the first command to end stopped a server the second still uses"
    assert _health(second)["database"] is True

    seconds = second.stop(signal.SIGINT)
    _assert_all_down(second, seconds)
