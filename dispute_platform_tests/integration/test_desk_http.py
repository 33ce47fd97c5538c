"""Issue 15: the desk's HTTP contract without a browser (every desk route refuses a caller without
a session; the API keeps its bearer tokens beside it), /health's daemon report, and the daemon
heartbeat reading against a real Dagster instance."""

from __future__ import annotations

import time

import pytest
from dagster import DagsterInstance
from dagster._daemon.types import DaemonHeartbeat
from fastapi.testclient import TestClient

from dispute_platform.api.app import create_app
from dispute_platform.api.desk import DeskConfig, _safe_next
from dispute_platform.daemon_status import DaemonState, read_daemon_state
from dispute_platform.resources.limits import Limits
from dispute_platform.settings import REPO_ROOT
from dispute_platform.store import reviewers, sessions
from dispute_platform_tests.integration.harness import protected_routes

pytestmark = pytest.mark.integration

CONFIG = DeskConfig(Limits(), 48.0, 8.0, True, REPO_ROOT / "policies")


@pytest.fixture
def client(db):
    app = create_app(db, limits=Limits(), desk=CONFIG,
                     daemon_state=lambda: DaemonState(None, "DAGSTER_HOME is not set"))  # fmt: skip
    return TestClient(app, base_url="https://testserver", follow_redirects=False)


def test_the_api_keeps_its_tokens_and_the_desk_its_sessions(client):
    for method, path in protected_routes(client.app):  # the desk adds no unguarded API route
        answer = getattr(client, method)(path, **({"json": {}} if method == "post" else {}))
        assert answer.status_code == 401, (method, path)
    for path in ("/desk/", "/desk/disputes/CASE-1063"):
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/desk/sign-in?next=")
    for path in ("/desk/disputes/CASE-1063/decision", "/desk/sign-out"):
        assert client.post(path, data={"csrf": "x", "decision": "approved", "proposal_version": "1"}).status_code in (303, 401)
    assert client.get("/").headers["location"] == "/desk/"
    page = client.get("/desk/sign-in")
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert "/desk" not in client.get("/openapi.json").text  # the desk is for people, not in the API schema


def test_a_disabled_reviewer_loses_the_desk_at_once(db, client):
    db.transact(lambda cur: reviewers.add_reviewer(cur, "carol", "carol-token-0123456789"))
    sign_in = client.get("/desk/sign-in")
    csrf = sign_in.text.split('name="csrf" value="')[1].split('"')[0]
    answer = client.post("/desk/sign-in", data={"token": "carol-token-0123456789", "csrf": csrf, "next": "https://evil.example/"})
    assert answer.status_code == 303 and answer.headers["location"] == "/desk/"  # no open redirect
    assert client.get("/desk/").status_code == 200
    db.transact(lambda cur: cur.execute("UPDATE reviewers SET disabled_at = now() WHERE name = 'carol'"))
    assert client.get("/desk/").headers["location"].endswith("reason=disabled")
    stored = db.fetch_one("SELECT session_sha256 FROM desk_sessions")["session_sha256"]
    assert stored not in answer.headers["set-cookie"]  # only the digest is kept


@pytest.mark.parametrize(
    ("target", "safe"),
    [("/desk/disputes/CASE-1", "/desk/disputes/CASE-1"), ("//evil.example/desk/", "/desk/"), ("https://evil/", "/desk/"),
     ("/desk/\\evil", "/desk/"), (None, "/desk/"), ("/docs", "/desk/")],
)  # fmt: skip
def test_sign_in_returns_only_to_desk_paths(target, safe):
    assert _safe_next(target) == safe


def test_health_reports_the_daemon(db):
    down = DaemonState(False, "no Dagster daemon is picking decisions up")
    answer = TestClient(create_app(db, limits=Limits(), daemon_state=lambda: down)).get("/health")
    assert answer.status_code == 200  # the endpoint works: decisions are recorded
    assert answer.json()["status"] == "degraded" and answer.json()["daemon"]["running"] is False


def test_daemon_state_from_real_heartbeats():
    with DagsterInstance.ephemeral() as instance:
        assert read_daemon_state(instance).running is False  # never ran
        now = time.time()
        instance.add_daemon_heartbeat(DaemonHeartbeat(now - 5, "SENSOR", None, None))
        alive = read_daemon_state(instance, now)
        assert alive.running is True and 4 <= alive.last_heartbeat_age_seconds <= 6
        stale = read_daemon_state(instance, now + 600)
        assert stale.running is False and "no Dagster daemon is picking decisions up" in stale.detail


def test_sessions_expire_and_end(db):
    db.transact(lambda cur: reviewers.add_reviewer(cur, "dora", "dora-token-0123456789"))
    reviewer = db.transact(lambda cur: sessions.reviewer_for_token(cur, "dora-token-0123456789"))
    new = db.transact(lambda cur: sessions.open_session(cur, reviewer, 8))
    assert db.transact(lambda cur: sessions.lookup_session(cur, new.session_id)).reviewer == reviewer
    assert db.transact(lambda cur: sessions.lookup_session(cur, new.session_id + "x")).state == "unknown"
    assert db.transact(lambda cur: sessions.end_session(cur, new.session_id))
    assert db.transact(lambda cur: sessions.lookup_session(cur, new.session_id)).state == "ended"
    short = db.transact(lambda cur: sessions.open_session(cur, reviewer, 0.0001))
    time.sleep(0.5)
    assert db.transact(lambda cur: sessions.lookup_session(cur, short.session_id)).state == "expired"


def test_the_desk_issues_a_launchpad_ticket_to_the_signed_in_reviewer(db, client, sqs, pg_url, tmp_path, chroma_dir):
    from dispute_platform.workflow.review import decide_with_ticket
    from dispute_platform_tests.money.support import REFUND_49, pending

    pending(db, pg_url, sqs, tmp_path, [REFUND_49])
    db.transact(lambda cur: reviewers.add_reviewer(cur, "erin", "erin-token-0123456789"))
    csrf = client.get("/desk/sign-in").text.split('name="csrf" value="')[1].split('"')[0]
    client.post("/desk/sign-in", data={"token": "erin-token-0123456789", "csrf": csrf, "next": "/desk/"})
    page = client.get(f"/desk/disputes/{REFUND_49}").text
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    assert client.post(f"/desk/disputes/{REFUND_49}/ticket", data={"proposal_version": "1"}).status_code == 403  # no CSRF
    answer = client.post(f"/desk/disputes/{REFUND_49}/ticket", data={"csrf": csrf, "proposal_version": "1"})
    assert answer.status_code == 200 and 'data-testid="ticket"' in answer.text
    ticket = answer.text.split("ticket: ")[1].split()[0]
    recorded = decide_with_ticket(db, ticket=ticket, case_id=REFUND_49, decision="approved", comments="", proposal_version=None,
                                  modified=None, limits=Limits(), run_id="launchpad")  # fmt: skip
    assert recorded.reviewer.name == "erin"
    row = db.fetch_one("SELECT issued_via, used_by_run FROM decision_tickets")
    assert row == {"issued_via": "desk", "used_by_run": "launchpad"}
