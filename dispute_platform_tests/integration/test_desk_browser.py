"""Issue 15: the review desk in a real browser (Playwright driving Debian's chromium) against the
real endpoint on a socket, real Postgres, the moto SQS endpoint and a real Chroma folder.

The Dagster UI too: after a small intake run on a Postgres-backed instance, dagster-webserver over
the workspace, ai_proposal's partition page of one dispute (its own figures) and the cost check's
verdicts per dispute.

Screenshots of the queue, of a dispute's page and of the two Dagster UI pages go to a temporary
folder, or to docs/ (the ones the README shows) when UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import email
import os
import re
from decimal import Decimal
from email import policy
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from dagster import DagsterInstance

from dispute_platform.api.app import create_app
from dispute_platform.api.desk import DeskConfig
from dispute_platform.daemon_status import DaemonState
from dispute_platform.domain.states import PROPOSAL_MAY_REGENERATE, Status
from dispute_platform.resources.limits import Limits
from dispute_platform.settings import REPO_ROOT
from dispute_platform.store import history, repo, reviewers
from dispute_platform.store.proposals import save_proposal
from dispute_platform.workflow.knowledge import read_seed_history
from dispute_platform_tests.integration.daemon import api_server, dagster_webserver
from dispute_platform_tests.integration.harness import (
    build_test_resources,
    refunds,
    run_intake,
    run_review,
    sample_event,
    store_events,
)
from dispute_platform_tests.integration.test_review_execution import review_tick

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
CASES = ["CASE-1063", "CASE-1065", "CASE-1002", "CASE-1025", "CASE-1060"]
#         full_refund 49  credit 125   escalate 15000  full_refund 490  invalid (window)
TOKENS = {"alice": "alice-desk-token-0123456789", "bob": "bob-desk-token-0123456789"}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def world(db, sqs, pg_url, tmp_path, chroma_dir):
    instance = DagsterInstance.ephemeral()
    resources = build_test_resources(pg_url, sqs, tmp_path)
    store_events(db, [sample_event(c) for c in CASES])
    assert run_intake(instance, resources, CASES).success
    for name, token in TOKENS.items():
        db.transact(lambda cur, name=name, token=token: reviewers.add_reviewer(cur, name, token))
    # The past cases' records, as the historical_resolutions asset keeps them (the seeded Chroma
    # folder holds only their vectors).
    db.transact(lambda cur: history.upsert_historical(cur, read_seed_history()))
    return instance, resources


@pytest.fixture
def desk(db, world):
    config = DeskConfig(
        limits=Limits(),
        sla_hours=48.0,
        session_hours=8.0,
        cookie_secure=True,
        policies_dir=REPO_ROOT / "policies",
    )
    app = create_app(
        db, limits=Limits(), desk=config,
        daemon_state=lambda: DaemonState(True, "Dagster daemon alive (test)"),
    )  # fmt: skip
    with api_server(app) as url:
        yield url


@pytest.fixture
def screenshots(tmp_path) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        return REPO_ROOT / "docs"
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder


def new_page(browser, viewport=(1280, 900)):
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    return context, context.new_page()


def sign_in(page, desk: str, who: str, path: str = "/desk/") -> None:
    page.goto(desk + path)
    assert "/desk/sign-in" in page.url
    page.fill("#token", TOKENS[who])
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert page.get_by_test_id("reviewer").inner_text() == who


def decisions(db, case_id: str) -> list[dict]:
    return db.fetch_all("SELECT reviewer, decision, source FROM review_decisions WHERE case_id = %s ORDER BY id", (case_id,))


def status_of(db, case_id: str) -> str:
    return db.fetch_one("SELECT status FROM workflow_states WHERE case_id = %s", (case_id,))["status"]


# --- sign-in, the queue and a dispute's page ----------------------------------------------------


def test_sign_in_then_the_queue_sorts_and_a_dispute_shows_what_a_reviewer_needs(browser, desk, screenshots):
    context, page = new_page(browser)
    page.goto(desk + "/")  # the bare address leads to the desk, which asks for a sign-in
    assert "/desk/sign-in" in page.url
    page.fill("#token", "not-a-token")
    with page.expect_response(re.compile(r".*/desk/sign-in$")) as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 401
    assert "Unknown or disabled reviewer token" in page.get_by_test_id("error").inner_text()

    sign_in(page, desk, "alice")
    cookie = next(c for c in context.cookies() if c["name"] == "dp_desk_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/desk"
    assert TOKENS["alice"] not in cookie["value"]

    rows = page.locator("[data-testid=queue] tbody tr")
    assert page.get_by_test_id("count").inner_text() == "4"  # CASE-1060 was stopped by validation
    page.get_by_test_id("sort-amount").first.click()  # ascending
    amounts = [Decimal(t.split()[0]) for t in rows.locator("td.num:nth-child(6)").all_inner_texts()]
    assert amounts == sorted(amounts) and len(amounts) == 4
    page.get_by_test_id("sort-amount").first.click()  # descending
    assert rows.first.get_attribute("data-case") == "CASE-1002"  # escalate 15000
    page.get_by_test_id("sort-sla").first.click()
    assert "SLA" in page.locator("th").nth(8).inner_text()
    assert all("due in" in t for t in rows.locator("td:nth-child(9)").all_inner_texts())
    page.get_by_test_id("sort-age").first.click()
    page.screenshot(path=str(screenshots / "desk-queue.png"), full_page=True)

    page.click("a[href='/desk/disputes/CASE-1063']")
    assert page.get_by_test_id("status").inner_text() == "pending_review"
    assert "CUST-" in page.get_by_test_id("customer").inner_text()
    assert "Disputed charge" in page.get_by_test_id("charges").inner_text()
    assert page.get_by_test_id("proposal-action").inner_text() == "full_refund"
    assert page.get_by_test_id("proposal-amount").inner_text() == "49.00 USD"
    assert page.get_by_test_id("reasoning").inner_text().strip()
    policies = page.get_by_test_id("policies")
    assert policies.locator("h3").count() >= 1 and "§" in policies.locator("h3").first.inner_text()
    assert len(policies.locator("pre.policy").first.inner_text()) > 80  # the section's text, not only its name
    similar = page.get_by_test_id("similar").locator("tbody tr")
    assert similar.count() >= 1 and "HIST-" in similar.first.inner_text()
    assert "no record" not in page.get_by_test_id("similar").inner_text()
    caps = page.get_by_test_id("caps").inner_text()
    assert caps.count("passed") == 4 and "LLM cost" in caps
    assert "one reviewer decides" in page.get_by_test_id("four-eyes-note").inner_text()
    page.screenshot(path=str(screenshots / "desk-dispute.png"), full_page=True)
    context.close()


# --- the whole loop ---------------------------------------------------------------------------


def test_an_approval_in_the_desk_is_executed_and_remembered(browser, desk, db, world, pg_url, sqs, tmp_path):
    instance, resources = world
    # The review e-mail links to the dispute's page; following it signed out asks for a sign-in
    # and then lands on that page.
    [mail] = (tmp_path / "outbox").glob("*review-CASE-1063*.eml")
    body = email.message_from_bytes(mail.read_bytes(), policy=policy.default).get_content()
    link = re.search(r"Decide in the review desk: (\S+)", body).group(1)
    assert urlsplit(link).path == "/desk/disputes/CASE-1063"
    context, page = new_page(browser)
    sign_in(page, desk, "alice", urlsplit(link).path)
    assert page.url.endswith("/desk/disputes/CASE-1063")
    page.fill("#approve-comments", "duplicate confirmed on the statement")
    page.locator("[data-testid=approve-form] button").click()
    assert "decision (approved) is recorded" in page.get_by_test_id("notice").inner_text()
    assert page.get_by_test_id("status").inner_text() == "decided"
    assert decisions(db, "CASE-1063") == [{"reviewer": "alice", "decision": "approved", "source": "desk"}]

    [request] = review_tick(instance, pg_url, sqs, resources).run_requests
    assert request.partition_key == "CASE-1063"
    assert run_review(instance, resources, "CASE-1063").success

    page.reload()
    assert page.get_by_test_id("status").inner_text() == "completed"
    executions = page.get_by_test_id("executions").inner_text()
    assert "succeeded" in executions and "49.00" in executions
    assert page.get_by_test_id("decide").count() == 0  # nothing left to decide
    assert [str(r["amount"]) for r in refunds(db)] == ["49.00"]
    hits = resources["vectors"].collection("dispute_resolutions").get(ids=["CASE-1063"])
    assert hits["ids"] == ["CASE-1063"]  # remembered as a past case
    context.close()


def test_four_eyes_needs_a_second_different_reviewer(browser, desk, db):
    alice_context, alice = new_page(browser)
    sign_in(alice, desk, "alice", "/desk/disputes/CASE-1002")
    assert "escalate" in alice.get_by_test_id("proposal-action").inner_text()
    # Approving an escalation is refused by the rules (422), in words.
    with alice.expect_response(re.compile(r".*/decision$")) as answer:
        alice.locator("[data-testid=approve-form] button").click()
    assert answer.value.status == 422
    assert "escalated proposal has no action to approve" in alice.get_by_test_id("error").inner_text()

    alice.select_option("#modify-action", "credit")
    alice.fill("#modify-amount", "1500.00")
    alice.fill("#modify-reason", "goodwill credit for the outage")
    alice.locator("[data-testid=modify-form] button").click()
    assert "a second, different reviewer must approve" in alice.get_by_test_id("notice").inner_text()
    assert alice.get_by_test_id("status").inner_text() == "awaiting_second_review"
    assert "You made it" in alice.get_by_test_id("four-eyes-note").inner_text()
    assert alice.get_by_test_id("modify-form").count() == 0  # a second review confirms or refuses

    with alice.expect_response(re.compile(r".*/decision$")) as answer:
        alice.locator("[data-testid=approve-form] button").click()  # the same reviewer again
    assert answer.value.status == 409
    assert "alice has already decided" in alice.get_by_test_id("error").inner_text()
    assert status_of(db, "CASE-1002") == "awaiting_second_review"

    bob_context, bob = new_page(browser)
    sign_in(bob, desk, "bob")
    row = bob.locator("[data-testid=queue] tr[data-case='CASE-1002']")
    assert "second review" in row.inner_text()
    row.locator("a").click()
    note = bob.get_by_test_id("four-eyes-note").inner_text()
    assert "First approval by alice (credit 1500.00)" in note
    bob.locator("[data-testid=approve-form] button").click()
    assert "decision (approved) is recorded" in bob.get_by_test_id("notice").inner_text()
    assert bob.get_by_test_id("status").inner_text() == "decided"
    assert [(d["reviewer"], d["decision"]) for d in decisions(db, "CASE-1002")] == [("alice", "modified"), ("bob", "approved")]
    alice_context.close()
    bob_context.close()


def test_a_stale_page_is_refused_and_shows_the_current_version(browser, desk, db):
    context, page = new_page(browser)
    sign_in(page, desk, "alice", "/desk/disputes/CASE-1065")
    assert "v1" in page.locator("h1").inner_text()

    def regenerate(cur) -> None:  # someone asks for a fresh proposal while the page is open
        proposal = repo.latest_proposal(cur, "CASE-1065")["proposal"]
        save_proposal(cur, "CASE-1065", proposal, status=Status.PENDING_REVIEW, allowed_from=PROPOSAL_MAY_REGENERATE,
                      reason=None, run_id=None)  # fmt: skip

    db.transact(regenerate)
    with page.expect_response(re.compile(r".*/decision$")) as answer:
        page.locator("[data-testid=approve-form] button").click()
    assert answer.value.status == 409
    error = page.get_by_test_id("error").inner_text()
    assert "proposal version 1 is stale: the current proposal is version 2" in error
    assert "v2" in page.locator("h1").inner_text()  # the page now shows the current proposal
    assert decisions(db, "CASE-1065") == []
    page.locator("[data-testid=approve-form] button").click()  # deciding again answers version 2
    assert page.get_by_test_id("status").inner_text() == "decided"
    context.close()


# --- CSRF and sessions ------------------------------------------------------------------------


def test_a_form_without_this_sessions_csrf_token_changes_nothing(browser, desk, db):
    context, page = new_page(browser)
    sign_in(page, desk, "alice", "/desk/disputes/CASE-1063")
    csrf = page.locator("[data-testid=approve-form] input[name=csrf]")
    csrf.evaluate("input => input.remove()")
    with page.expect_response(re.compile(r".*/decision$")) as answer:
        page.locator("[data-testid=approve-form] button").click()
    assert answer.value.status == 403 and "security token" in page.get_by_test_id("error").inner_text()

    page.locator("[data-testid=approve-form] input[name=csrf]").evaluate("input => input.value = 'forged'")
    with page.expect_response(re.compile(r".*/decision$")) as answer:
        page.locator("[data-testid=approve-form] button").click()
    assert answer.value.status == 403
    assert decisions(db, "CASE-1063") == [] and status_of(db, "CASE-1063") == "pending_review"

    # The sign-in form is protected too: a post that did not come from the desk's own form.
    forged = context.request.post(desk + "/desk/sign-in", form={"token": TOKENS["bob"], "csrf": "x"}, max_redirects=0)
    assert forged.status == 403
    context.close()


def test_an_expired_session_is_refused(browser, desk, db):
    context, page = new_page(browser)
    sign_in(page, desk, "alice", "/desk/disputes/CASE-1063")
    db.transact(lambda cur: cur.execute("UPDATE desk_sessions SET expires_at = now() - interval '1 minute'"))
    with page.expect_response(re.compile(r".*/decision$")) as answer:
        page.locator("[data-testid=approve-form] button").click()
    assert answer.value.status == 401
    assert "session expired" in page.get_by_test_id("message").inner_text()
    assert decisions(db, "CASE-1063") == []

    sign_in(page, desk, "alice")  # a fresh session, expired while the queue is open
    db.transact(lambda cur: cur.execute("UPDATE desk_sessions SET expires_at = now() - interval '1 second'"))
    page.reload()
    assert "/desk/sign-in" in page.url
    assert "Your session expired" in page.locator("main").inner_text()
    context.close()


def test_a_signed_out_cookie_is_refused(browser, desk, db):
    context, page = new_page(browser)
    sign_in(page, desk, "alice", "/desk/disputes/CASE-1063")
    stolen = [c for c in context.cookies() if c["name"] == "dp_desk_session"]
    csrf = page.locator("[data-testid=approve-form] input[name=csrf]").input_value()
    page.get_by_role("button", name="Sign out").click()
    assert "/desk/sign-in" in page.url
    assert not [c for c in context.cookies() if c["name"] == "dp_desk_session"]

    replay_context, replay = new_page(browser)
    replay_context.add_cookies(stolen)  # the old cookie, kept by someone after sign-out
    replay.goto(desk + "/desk/")
    assert "/desk/sign-in" in replay.url
    answer = replay_context.request.post(
        desk + "/desk/disputes/CASE-1063/decision",
        form={"csrf": csrf, "proposal_version": "1", "decision": "approved"},
        headers={"Cookie": f"dp_desk_session={stolen[0]['value']}"},
        max_redirects=0,
    )
    assert answer.status == 401 and "signed out" in answer.text()
    assert decisions(db, "CASE-1063") == []
    replay_context.close()
    context.close()


def test_the_desk_says_when_no_daemon_executes_decisions(browser, db, world):
    config = DeskConfig(Limits(), 48.0, 8.0, True, REPO_ROOT / "policies")
    down = DaemonState(False, "no Dagster daemon is picking decisions up (last heartbeat 300 s ago)")
    with api_server(create_app(db, limits=Limits(), desk=config, daemon_state=lambda: down)) as url:
        context, page = new_page(browser)
        sign_in(page, url, "bob")
        assert "no Dagster daemon is picking decisions up" in page.get_by_test_id("daemon-down").inner_text()
        health = context.request.get(url + "/health").json()
        assert health["daemon"] == {"running": False, "detail": down.detail} and health["status"] == "degraded"
        context.close()


def test_screenshots_are_committed_for_the_readme():
    readme = (REPO_ROOT / "README.md").read_text()
    for name in ("desk-queue.png", "desk-dispute.png", "dagster-partition.png", "dagster-checks.png"):
        assert (REPO_ROOT / "docs" / name).is_file() and f"docs/{name}" in readme


# --- the Dagster UI: one dispute's partition page tells that dispute's truth -------------------

UI_CASES = ["CASE-1063", "CASE-1065", "CASE-1025", "CASE-1060"]
#            full_refund 49  credit 125   full_refund 490  invalid (outside the window)
UI_OVER = "CASE-1065"  # already spent $0.002 on the model: over the $0.001 per-dispute cost cap


@pytest.fixture
def dagster_ui(db, sqs, pg_url, tmp_path, chroma_dir, monkeypatch):
    """A small intake run on a Postgres-backed Dagster instance (as deployed), then
    dagster-webserver over the project's workspace on that instance."""
    import yaml

    from dispute_platform.local import dagster_yaml
    from dispute_platform.store.db import sqlalchemy_url
    from dispute_platform.store.scratch import scratch_database

    with scratch_database(pg_url, "dp_dagster_ui") as dagster_db:
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump({k: v for k, v in dagster_yaml().items() if k != "python_logs"}))
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", sqlalchemy_url(dagster_db))
        instance = DagsterInstance.from_config(str(home))
        try:
            resources = build_test_resources(pg_url, sqs, tmp_path)
            store_events(db, [sample_event(c) for c in UI_CASES])
            db.transact(lambda cur: cur.execute("UPDATE workflow_states SET llm_cost = 0.002 WHERE case_id = %s", (UI_OVER,)))
            result = run_intake(instance, resources, UI_CASES)
            assert result.success  # the dispute over a cap does not fail the batch run
            env = {
                **os.environ,
                "DAGSTER_HOME": str(home),
                "DAGSTER_POSTGRES_URL": sqlalchemy_url(dagster_db),
                "DATABASE_URL": pg_url,
                "DISPUTE_PLATFORM_HOME": str(tmp_path / "platform_home"),
                "CHROMA_DB_PATH": str(tmp_path / "chroma"),
                "EMAIL_OUTBOX": str(tmp_path / "outbox"),
                "SQS_ENDPOINT_URL": sqs.endpoint_url,
                "DISPUTE_EVENTS_QUEUE_URL": sqs.dispute_events_queue_url,
                "HUMAN_REVIEW_NOTIFICATIONS_QUEUE_URL": sqs.human_review_queue_url,
                "DAGSTER_DISABLE_TELEMETRY": "1",
            }
            with dagster_webserver(env, tmp_path / "webserver.log") as url:
                yield url, result
        finally:
            instance.dispose()


def _close_dialogs(page) -> None:
    """Close any Dagster dialog left open over the page, so that it cannot swallow the next click
    (the instance config turns the first-visit community dialog off; this is the second guard)."""
    backdrop = page.locator(".bp5-overlay-backdrop")
    for _ in range(20):
        if not backdrop.count():
            return
        skip = page.get_by_role("button", name="Skip")
        if skip.count():
            skip.first.click(force=True)
        else:
            page.keyboard.press("Escape")
        page.wait_for_timeout(250)
    raise AssertionError("a Dagster dialog stays open over the page")


def _dagster_page(page, url: str, wait_for: str) -> None:
    """Open a Dagster UI page and wait until `wait_for` shows (the UI loads its data after the
    page), then let the rest of the panel (metadata tables, plots) settle."""
    page.goto(url)
    page.get_by_text(wait_for, exact=False).first.wait_for(timeout=90_000)
    page.wait_for_timeout(1500)  # the community dialog would have opened by now (after 1 s)
    assert not page.get_by_text("Join the Dagster community").count()  # nux is off in dagster.yaml
    _close_dialogs(page)


def test_the_dagster_ui_shows_one_disputes_own_figures_and_checks(browser, dagster_ui, screenshots):
    url, result = dagster_ui
    context, page = new_page(browser, viewport=(1440, 1100))

    # The partition page of the dispute over the cost cap: its own proposal and figures.
    _dagster_page(page, url + f"/assets/ai_proposal?view=partitions&partition={UI_OVER}", "auto_approval")
    text = page.locator("body").inner_text()
    assert "Materialized (3)" in text and "Missing (1)" in text  # the invalid dispute is not a green proposal
    assert "blocked by a cap" in text and "credit 125.00 USD" in text and "876" in text  # its status, proposal, tokens
    assert "skipped" not in text and "max_figure" not in text and "proposed 3" not in text  # no batch figures
    page.screenshot(path=str(screenshots / "dagster-partition.png"), full_page=True)

    # The cost check's history: one verdict per dispute, with that dispute's figure; the one
    # over the cap failed, the others passed, the invalid one had nothing to check.
    _dagster_page(page, url + "/assets/ai_proposal?view=checks&checkDetail=cost_within_cap", "Latest execution")
    _close_dialogs(page)
    page.get_by_text("Execution history", exact=True).first.click()
    page.get_by_text(f"{UI_OVER}: 0.002000 over the cap 0.001").first.wait_for(timeout=60_000)
    rows = page.locator("tbody tr")
    verdicts = {}
    for row in rows.all():
        cells = row.inner_text()
        case = re.search(r"CASE-\d+", cells)
        if case and ("Passed" in cells or "Failed" in cells):
            verdicts[case.group(0)] = "Failed" if "Failed" in cells else "Passed"
    assert verdicts == {"CASE-1063": "Passed", UI_OVER: "Failed", "CASE-1025": "Passed", "CASE-1060": "Passed"}, verdicts
    history = page.locator("body").inner_text()
    assert "the dispute is blocked and can not be executed" in history and "CASE-1060: no proposal to check" in history
    # The Checks list beside it agrees: the cost check failed (for one dispute), the others passed.
    for name in ("amount_within_refundable", "cost_within_cap", "input_tokens_within_cap", "output_tokens_within_cap"):
        listed = re.search(rf"{name}\s+(?:{name}\s+)?(Succeeded|Failed|Skipped)", history)
        assert listed and listed.group(1) == ("Failed" if name == "cost_within_cap" else "Succeeded"), (name, listed)
    page.screenshot(path=str(screenshots / "dagster-checks.png"), full_page=True)
    _close_dialogs(page)
    page.get_by_text("Partitions", exact=True).last.click()
    page.get_by_text("Failed (1)").first.wait_for(timeout=60_000)  # per-partition status agrees
    text = page.locator("body").inner_text()
    assert "Passed (3)" in text, text[-600:]

    # The invalid dispute: no materialization, an observation that says why.
    _dagster_page(page, url + "/assets/ai_proposal?view=events&partition=CASE-1060", "skipped: dispute is invalid")
    assert "Partition CASE-1060 observed" in page.locator("body").inner_text()
    context.close()
