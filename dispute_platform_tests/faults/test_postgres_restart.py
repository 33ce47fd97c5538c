"""PostgreSQL restarted while runs are in flight. The platform database is a pgserver instance of
this test's own (the machine's shared server is never touched); a thread restarts it with
`pg_ctl restart -m fast` again and again (and once stops it for two seconds) while the sensor
ingests, an intake run enriches and proposes, and a review run executes refunds.
`Database.transact` must carry every transaction across: every dispute reaches its expected status,
one proposal each, exactly one refund per approved dispute."""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg2
import pytest
from dagster import DagsterInstance, materialize

from dispute_platform.resources.providers import SandboxCRM, SandboxPayments
from dispute_platform.store import migrations
from dispute_platform.store.db import Database
from dispute_platform_tests.conftest import drain
from dispute_platform_tests.faults.support import apply_sensor_result, sqs_tick
from dispute_platform_tests.integration.harness import RANGE_END, RANGE_START, REVIEW, build_test_resources, decide

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APPROVE = ["CASE-1063", "CASE-1025", "CASE-1034", "CASE-1027", "CASE-1049", "CASE-1055", "CASE-1061", "CASE-1059"]
REJECT = ["CASE-1065"]
LEAVE = ["CASE-1002"]  # escalated: stays pending review
INVALID = ["CASE-1060", "CASE-1005"]
CASES = APPROVE + REJECT + LEAVE + INVALID


# Restarts the test asks for at chosen moments, besides the random ones (set by the test).
IN_FLIGHT: dict[str, object] = {}


def _restart_in_flight(where: str, outage: float = 0.0) -> None:
    IN_FLIGHT.setdefault("done", []).append(where)  # type: ignore[union-attr]
    control: ServerControl = IN_FLIGHT["control"]  # type: ignore[assignment]
    control.outage(outage) if outage else control.restart()


class SlowCRM(SandboxCRM):
    """A CRM that answers in a quarter of a second (so the intake run lasts across restarts) and
    restarts the server while it fetches the third case."""

    def fetch_case(self, case_id):
        time.sleep(0.25)
        if case_id == CASES[2]:
            _restart_in_flight(f"crm:{case_id}")
        return super().fetch_case(case_id)


class CrashyPayments(SandboxPayments):
    """Refunds that take a moment; after the second one the server goes down for two seconds,
    between the provider's answer and the platform's write of it."""

    def refund(self, charge_id, amount, currency, idempotency_key, reason, *, case_id):
        time.sleep(0.2)
        receipt = super().refund(charge_id, amount, currency, idempotency_key, reason, case_id=case_id)
        if case_id == APPROVE[1]:
            _restart_in_flight(f"refund:{APPROVE[1]}", outage=2.0)
        return receipt


@dataclass
class ServerControl:
    """pg_ctl on this test's own server, one action at a time (the random restarter and the
    in-flight restarts never interleave)."""

    pgdata: Path
    user: str | None
    socket_dir: str
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", *args], pgdata=self.pgdata, user=self.user, timeout=60)

    def _start(self) -> None:
        # pgserver's own options: no TCP at all, the socket in its folder (the machine's shared
        # server keeps port 5432 to itself).
        self._pg_ctl("-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pgdata / "log"), "start")

    def restart(self) -> None:
        with self.lock:
            self._pg_ctl("-m", "fast", "restart")

    def outage(self, seconds: float) -> None:
        with self.lock:
            self._pg_ctl("-m", "fast", "stop")
            time.sleep(seconds)
            self._start()

    def stop(self) -> None:
        with self.lock:
            if (self.pgdata / "postmaster.pid").exists():
                self._pg_ctl("-m", "fast", "stop")


@pytest.fixture
def own_postgres():
    import pgserver

    # Not under pytest's tmp tree: the server runs as the `pgserver` OS user, which must traverse
    # every parent folder, and any pytest session on the machine resets /tmp/pytest-of-<user> to 0700.
    root = Path(tempfile.mkdtemp(prefix="dp-pg-restart-"))
    root.chmod(0o755)
    pgdata = root / "pgdata"
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    uri = server.get_uri("postgres")
    control = ServerControl(pgdata=pgdata, user=server.system_user, socket_dir=parse_qs(urlsplit(uri).query)["host"][0])
    try:
        admin = psycopg2.connect(uri)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute('CREATE DATABASE "dispute_platform"')
        admin.close()
        url = server.get_uri("dispute_platform")
        db = Database(url)
        migrations.apply(db)
        db.close()
        yield url, control
    finally:
        # After a restart pgserver no longer knows the postmaster's pid and would leave it running.
        control.stop()
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


class Restarter(threading.Thread):
    """Restarts the server at random moments until told to stop; every fourth time it stays
    down for two seconds before starting again."""

    def __init__(self, control: ServerControl, seed: int):
        super().__init__(daemon=True)
        self.control, self.rng = control, random.Random(seed)
        self.stop_event = threading.Event()
        self.restarts = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop_event.wait(self.rng.uniform(0.3, 1.2)):
            try:
                if self.restarts % 4 == 3:
                    self.control.outage(2.0)
                else:
                    self.control.restart()
                self.restarts += 1
            except Exception as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(exc))
                return

    def finish(self) -> int:
        self.stop_event.set()
        self.join(timeout=90)
        assert not self.is_alive(), "the restarter is stuck"
        assert not self.errors, self.errors
        return self.restarts


class Lost(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "database connection lost" in record.getMessage():
            self.count += 1


def _during_restarts(control, seed: int, work):
    restarter = Restarter(control, seed)
    restarter.start()
    try:
        result = work()
    finally:
        restarts = restarter.finish()
    return result, restarts


def test_runs_survive_postgres_restarts(own_postgres, sqs, tmp_path, chroma_dir):
    url, control = own_postgres
    lost = Lost()
    logging.getLogger("dispute_platform.store.db").addHandler(lost)
    try:
        db = Database(url)
        instance = DagsterInstance.ephemeral()
        resources = build_test_resources(url, sqs, tmp_path)
        resources["crm"] = SlowCRM(postgres=resources["postgres"])
        resources["payments"] = CrashyPayments(postgres=resources["postgres"])
        IN_FLIGHT.clear()
        IN_FLIGHT["control"] = control
        sqs.send_many([{"case_id": c, "event_id": f"evt-{c}"} for c in CASES])  # bare events: the CRM decides

        # 1. The sensor ingests while the server restarts under it, then the intake run goes.
        def intake():
            answer = sqs_tick(instance, sqs, url)
            return answer, apply_sensor_result(instance, answer, resources)

        (answer, runs), restarts_intake = _during_restarts(control, 1, intake)
        failures = [e.message for r in runs for e in r.all_events if e.is_failure]
        assert runs and all(r.success for r in runs), failures
        assert sorted(answer.dynamic_partitions_requests[0].partition_keys) == sorted(CASES)

        # 2. Decisions, then one review run over every decided dispute while the server restarts.
        for case_id in APPROVE + REJECT:
            decision = "approved" if case_id in APPROVE else "rejected"
            decide(db, case_id, decision, "alice", comments="restart test")
        decided = APPROVE + REJECT
        review_instance = DagsterInstance.ephemeral()
        review_instance.add_dynamic_partitions("disputes", decided)

        def review():
            return materialize(REVIEW, instance=review_instance, resources=resources, raise_on_error=False,
                               tags={RANGE_START: decided[0], RANGE_END: decided[-1]})  # fmt: skip

        result, restarts_review = _during_restarts(control, 2, review)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
    finally:
        logging.getLogger("dispute_platform.store.db").removeHandler(lost)

    assert restarts_intake >= 1 and restarts_review >= 1, (restarts_intake, restarts_review)
    assert IN_FLIGHT["done"] == [f"crm:{CASES[2]}", f"refund:{APPROVE[1]}"], IN_FLIGHT["done"]
    assert lost.count >= 2, f"only {lost.count} transaction(s) met a restart: the test proved little"

    states = {r["case_id"]: r for r in db.fetch_all("SELECT * FROM workflow_states")}
    assert set(states) == set(CASES)
    for case_id in APPROVE + REJECT:
        assert states[case_id]["status"] == "completed", (case_id, states[case_id]["status"], states[case_id]["status_reason"])
    for case_id in LEAVE:
        assert states[case_id]["status"] == "pending_review"
    for case_id in INVALID:
        assert states[case_id]["status"] == "invalid" and states[case_id]["status_reason"]
    per_case = db.fetch_all("SELECT case_id, COUNT(*) AS n, MAX(version) AS v FROM proposals GROUP BY case_id")
    assert {r["case_id"]: (r["n"], r["v"]) for r in per_case} == {c: (1, 1) for c in APPROVE + REJECT + LEAVE}
    made = db.fetch_all("SELECT charge_id, amount, case_id FROM sandbox_refunds")
    refunded = sorted(r["case_id"] for r in made)
    assert refunded == sorted(APPROVE), refunded
    executions = db.fetch_all("SELECT case_id, status FROM executions ORDER BY case_id")
    assert {e["case_id"]: e["status"] for e in executions} == {c: "succeeded" for c in APPROVE} | {c: "noop" for c in REJECT}
    assert db.fetch_one("SELECT COUNT(*) AS n FROM dispute_events")["n"] == len(CASES)
    assert drain(sqs, sqs.dispute_events_queue_url) == []
    db.close()
