"""An archived dispute is gone from Dagster's partition set but everything that reads Postgres still
shows it: `status`, the API, the review desk, the cost report; and a case that comes back through
SQS gets its partition again."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context
from fastapi.testclient import TestClient
from rich.console import Console

from dispute_platform.api.app import create_app
from dispute_platform.api.desk import DeskConfig
from dispute_platform.commands.summary import summary_table
from dispute_platform.domain.retention import RetentionPolicy
from dispute_platform.reports.queries import load_calls
from dispute_platform.resources.limits import Limits
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.settings import REPO_ROOT
from dispute_platform.store import reviewers
from dispute_platform.workflow.retention import run_archive_pass
from dispute_platform_tests.definitions import sqs_dispute_sensor
from dispute_platform_tests.integration.conftest import chroma_dir, seeded_chroma  # noqa: F401
from dispute_platform_tests.integration.harness import (
    build_test_resources,
    decide,
    run_intake,
    run_review,
    sample_event,
    store_events,
)
from dispute_platform_tests.retention.conftest import settle

pytestmark = pytest.mark.integration

CASE = "CASE-1063"  # full_refund 49.00
TOKEN = "alice-token-0123456789"


@pytest.fixture
def archived(db, sqs, pg_url, tmp_path, chroma_dir):  # noqa: F811
    """CASE-1063 taken through the real intake, review, execution and embedding, then archived."""
    instance = DagsterInstance.ephemeral()
    resources = build_test_resources(pg_url, sqs, tmp_path)
    store_events(db, [sample_event(CASE)])
    assert run_intake(instance, resources, [CASE]).success
    db.transact(lambda cur: reviewers.add_reviewer(cur, "alice", TOKEN))
    decide(db, CASE, who="alice")
    assert run_review(instance, resources, CASE).success
    assert db.fetch_one("SELECT status FROM workflow_states WHERE case_id = %s", (CASE,))["status"] == "completed"
    settle(db, CASE, "completed", days_ago=40)
    report = run_archive_pass(db, instance, RetentionPolicy(days=30, max_settled=100))
    assert report.figures.archived == 1 and report.figures.runs_deleted == 2  # the intake and the review run
    assert instance.get_dynamic_partitions("disputes") == []
    return instance


def test_status_api_desk_and_cost_report_still_show_an_archived_dispute(db, archived):
    console = Console(record=True, width=250)
    console.print(summary_table(db, "Disputes"))
    line = next(x for x in console.export_text().splitlines() if CASE in x)
    assert "completed" in line and "succeeded 49.00" in line

    api = TestClient(create_app(db, limits=Limits()))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    dispute = api.get(f"/disputes/{CASE}", headers=headers)
    assert dispute.status_code == 200, dispute.text
    body = dispute.json()
    assert body["archived_at"] is not None and body["executions"][0]["status"] == "succeeded"
    assert api.get(f"/costs/case/{CASE}", headers=headers).json()["case_id"] == CASE
    status = api.get(f"/workflow/{body['run_id']}/status", headers=headers).json()
    assert status["status"] == "completed" and status["archived_at"] == body["archived_at"]

    desk = TestClient(create_app(db, limits=Limits(), desk=DeskConfig(Limits(), 48.0, 8.0, True, REPO_ROOT / "policies")),
                      base_url="https://testserver", follow_redirects=False)  # fmt: skip
    csrf = desk.get("/desk/sign-in").text.split('name="csrf" value="')[1].split('"')[0]
    assert desk.post("/desk/sign-in", data={"token": TOKEN, "csrf": csrf, "next": "/desk/"}).status_code == 303
    page = desk.get(f"/desk/disputes/{CASE}")
    assert page.status_code == 200 and CASE in page.text and "completed" in page.text.lower()

    assert CASE in load_calls(db)["case_id"].to_list()


def test_a_new_event_for_an_archived_case_restores_its_partition_through_the_sqs_sensor(db, sqs, pg_url, archived):
    instance = archived
    first = db.fetch_one("SELECT MAX(id) AS id FROM dispute_events")["id"]
    sqs.send_many([{**sample_event(CASE), "event_id": "evt-CASE-1063-reopened", "description": "Charged again."}])

    answer = sqs_dispute_sensor(build_sensor_context(instance=instance, cursor=str(first),
                                                     resources={"sqs": sqs, "postgres": PostgresResource(database_url=pg_url)}))  # fmt: skip

    assert isinstance(answer, SensorResult)
    [request] = answer.dynamic_partitions_requests
    assert list(request.partition_keys) == [CASE]
    assert answer.run_requests == []  # a settled case starts no intake run; it is visible again
    assert int(answer.cursor) > first
    state = db.fetch_one("SELECT status, archived_at FROM workflow_states WHERE case_id = %s", (CASE,))
    assert state["archived_at"] is None and state["status"] == "completed"
    trail = [r["event"] for r in db.fetch_all("SELECT event FROM audit_log WHERE case_id = %s ORDER BY id", (CASE,))]
    assert trail[-3:] == ["partition_archived", "event_received_for_known_case", "partition_restored"]
    instance.add_dynamic_partitions("disputes", list(request.partition_keys))  # what the daemon applies
    assert instance.get_dynamic_partitions("disputes") == [CASE]

    # The next tick, with the cursor moved on, asks for nothing; the key is there.
    again = sqs_dispute_sensor(build_sensor_context(instance=instance, cursor=answer.cursor,
                                                    resources={"sqs": sqs, "postgres": PostgresResource(database_url=pg_url)}))  # fmt: skip
    assert not isinstance(again, SensorResult) or not again.dynamic_partitions_requests
