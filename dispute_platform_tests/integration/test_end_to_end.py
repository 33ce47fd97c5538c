"""End to end through a real Dagster daemon: an SQS message becomes a proposal, a reviewer decides
over HTTP, the refund is executed once and the resolution embedded; the next similar dispute finds
it among its similar cases."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from dispute_platform.api.app import create_app
from dispute_platform.domain.world import BUNDLED_WORLD
from dispute_platform.resources.limits import Limits
from dispute_platform.store import reviewers
from dispute_platform_tests.integration.daemon import api_server, deployment, wait_for
from dispute_platform_tests.integration.harness import refunds

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRST, SECOND = "CASE-1063", "CASE-1027"
DESCRIPTION = (
    "My team was billed twice for the same invoice this month: two identical subscription charges "
    "hit the company card a day apart. Please refund the duplicate charge."
)


@pytest.fixture
def world(tmp_path):
    """The bundled world with the two duplicate-charge cases written alike (a user-built world)."""
    data = json.loads(BUNDLED_WORLD.read_text())
    for case in data["cases"]:
        if case["case_id"] in (FIRST, SECOND):
            case["description"] = DESCRIPTION
    for event in data["sample_events"]:
        if event["case_id"] in (FIRST, SECOND):
            event["description"] = DESCRIPTION
    path = tmp_path / "world.json"
    path.write_text(json.dumps(data))
    return path, {e["case_id"]: e for e in data["sample_events"]}


def _status(db, case_id):
    row = db.fetch_one("SELECT status FROM workflow_states WHERE case_id = %s", (case_id,))
    return row["status"] if row else None


def test_sqs_to_executed_and_embedded_resolution_through_the_daemon(db, sqs, pg_url, tmp_path, seeded_chroma, world):
    world_path, events = world
    token = "e2e-reviewer-token-000000000000"
    db.transact(lambda cur: reviewers.add_reviewer(cur, "erin", token))

    with deployment(pg_url, sqs, tmp_path / "home", seeded_chroma=seeded_chroma, world=world_path) as dep:
        sqs.send(events[FIRST])
        wait_for(lambda: _status(db, FIRST) == "pending_review", timeout=180, what="the first proposal", deployment=dep)
        wait_for(lambda: db.fetch_one("SELECT COUNT(*) AS n FROM check_results WHERE case_id = %s", (FIRST,))["n"] == 4,
                 timeout=60, what="the cap checks", deployment=dep)  # fmt: skip
        proposal = db.fetch_one("SELECT * FROM proposals WHERE case_id = %s", (FIRST,))
        assert (proposal["action"], proposal["amount"]) == ("full_refund", Decimal("49.00"))
        assert db.fetch_one("SELECT COUNT(*) AS n FROM check_results WHERE case_id = %s AND passed", (FIRST,))["n"] == 4

        with api_server(create_app(db, limits=Limits())) as base_url:
            answer = httpx.post(
                f"{base_url}/human-review/decision",
                headers={"Authorization": f"Bearer {token}"},
                json={"case_id": FIRST, "decision": "approved", "proposal_version": 1, "comments": "duplicate confirmed"},
            )
        assert answer.status_code == 200, answer.text

        wait_for(lambda: _status(db, FIRST) == "completed", timeout=180, what="execution and embedding", deployment=dep)
        made = refunds(db)
        validation = db.fetch_one("SELECT validation FROM workflow_states WHERE case_id = %s", (FIRST,))["validation"]
        assert [(r["charge_id"], str(r["amount"])) for r in made] == [(validation["disputed_charge_id"], "49.00")]
        assert db.fetch_one("SELECT source FROM historical_resolutions WHERE case_id = %s", (FIRST,))["source"] == "platform"

        sqs.send(events[SECOND])
        wait_for(lambda: _status(db, SECOND) == "pending_review", timeout=180, what="the second proposal", deployment=dep)
        second = db.fetch_one("SELECT proposal FROM proposals WHERE case_id = %s", (SECOND,))["proposal"]
        assert FIRST in second["similar_cases"], second
        assert len(refunds(db)) == 1  # nothing moved for the second dispute: it waits for a reviewer
