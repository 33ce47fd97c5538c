"""The CLI commands `publish`, `status`, `api` and `run` against the test database and the local
SQS queues (the `local_env` configuration, so no command starts services of its own).
`reviewer add` is covered by test_reviewer_commands.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from dispute_platform.settings import REPO_ROOT
from dispute_platform.store import reviewers
from dispute_platform_tests.conftest import drain
from dispute_platform_tests.integration.harness import sample_event, sample_events, store_events
from dispute_platform_tests.operations.test_doctor import local_env  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


def _cli(*args: str):
    from dispute_platform.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _case_ids(bodies: list[str]) -> list[str]:
    return sorted(json.loads(b)["case_id"] for b in bodies)


def test_publish_sends_the_samples_a_case_or_a_file(local_env, sqs, tmp_path):  # noqa: F811
    three = _cli("publish", "--count", "3")
    assert three.exit_code == 0 and "published 3 event(s)" in three.output
    assert _case_ids(drain(sqs, sqs.dispute_events_queue_url)) == sorted(e["case_id"] for e in sample_events()[:3])

    one = _cli("publish", "--case-id", "CASE-1063")
    assert one.exit_code == 0 and [json.loads(b) for b in drain(sqs, sqs.dispute_events_queue_url)] == [sample_event("CASE-1063")]
    unknown = _cli("publish", "--case-id", "CASE-7777")
    assert unknown.exit_code == 0
    assert [json.loads(b) for b in drain(sqs, sqs.dispute_events_queue_url)] == [
        {"case_id": "CASE-7777", "event_id": "evt-CASE-7777-manual"}]  # fmt: skip

    lines = tmp_path / "events.jsonl"
    lines.write_text('{"case_id": "FILE-1"}\n\nnot json, sent as is\n', encoding="utf-8")
    sent = _cli("publish", "--file", str(lines))
    assert sent.exit_code == 0 and "published 2 event(s)" in sent.output
    assert sorted(drain(sqs, sqs.dispute_events_queue_url)) == sorted(['{"case_id": "FILE-1"}', "not json, sent as is"])

    too_many = _cli("publish", "--count", str(len(sample_events()) + 1))
    assert too_many.exit_code == 1 and "sample events exist" in too_many.output
    assert drain(sqs, sqs.dispute_events_queue_url) == []


def test_status_prints_every_dispute_with_its_status(db, local_env):  # noqa: F811
    store_events(db, [sample_event("CASE-1063"), sample_event("CASE-1065")])
    db.transact(lambda cur: cur.execute(
        "UPDATE workflow_states SET status = 'invalid', status_reason = 'charge outside the 60-day window' "
        "WHERE case_id = 'CASE-1065'"))  # fmt: skip

    shown = _cli("status")

    assert shown.exit_code == 0
    text = " ".join(shown.output.split())
    assert "CASE-1063" in text and "CASE-1065" in text
    assert "received" in text and "invalid" in text and "charge outside the 60-day window" in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    environment = {**os.environ, **env, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "dispute_platform.cli", *args], cwd=REPO_ROOT, env=environment,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def test_api_serves_the_decision_endpoint_until_sigterm(db, local_env, tmp_path):  # noqa: F811
    store_events(db, [sample_event("CASE-1063")])
    db.transact(lambda cur: reviewers.add_reviewer(cur, "carol", "carol-token-0123456789"))
    port, log = _free_port(), tmp_path / "api.log"
    api = _command(local_env, log, "api", "--port", str(port))
    try:
        base, deadline, health = f"http://127.0.0.1:{port}", time.monotonic() + 120, None
        while time.monotonic() < deadline and api.poll() is None:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert health is not None, log.read_text(errors="replace")[-3000:]
        assert health.status_code == 200 and health.json()["database"] is True and health.json()["queue"] is True
        assert httpx.get(f"{base}/human-review/pending", timeout=10).status_code == 401
        dispute = httpx.get(f"{base}/disputes/CASE-1063", headers={"Authorization": "Bearer carol-token-0123456789"}, timeout=10)
        assert dispute.status_code == 200 and dispute.json()["case_id"] == "CASE-1063"
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(timeout=30)
    assert api.returncode == 128 + signal.SIGTERM


@pytest.mark.slow
def test_run_takes_published_events_to_executed_resolutions(db, local_env, sqs, tmp_path):  # noqa: F811
    """`run --auto-approve`: knowledge loaded, a daemon started, the events on the queue taken
    through intake, approved by the demo reviewer, executed, and the summary printed."""
    sqs.send_many([sample_event("CASE-1063"), sample_event("CASE-1065")])  # full_refund 49, credit 125
    log = tmp_path / "run.log"
    env = local_env | {"SQS_SENSOR_INTERVAL_SECONDS": "2", "REVIEW_SENSOR_INTERVAL_SECONDS": "2"}
    run = _command(env, log, "run", "--auto-approve", "--timeout", "600")
    try:
        run.wait(timeout=900)
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=30)
    output = log.read_text(errors="replace")
    assert run.returncode == 0, output[-4000:]
    states = {r["case_id"]: r["status"] for r in db.fetch_all("SELECT case_id, status FROM workflow_states")}
    assert states == {"CASE-1063": "completed", "CASE-1065": "completed"}, output[-4000:]
    moved = db.fetch_all("SELECT 'refund' AS kind, case_id, amount FROM sandbox_refunds "
                         "UNION ALL SELECT 'credit', case_id, amount FROM sandbox_credits ORDER BY case_id")  # fmt: skip
    assert [(m["kind"], m["case_id"], str(m["amount"])) for m in moved] == [
        ("refund", "CASE-1063", "49.00"), ("credit", "CASE-1065", "125.00")]  # fmt: skip
    assert "CASE-1063" in output and "CASE-1065" in output
    assert "sample events to" not in output  # the queue held events: no samples were published
    assert drain(sqs, sqs.dispute_events_queue_url) == []
