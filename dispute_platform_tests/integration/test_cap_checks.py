"""Issues 12 and 15: the four cap checks are evaluated once per run and reported per dispute; one
dispute over a cap is blocked (and never executed) without failing the batch run, and disputes
stopped by validation are skipped in Dagster, with their reason.

Real PostgreSQL, the moto SQS endpoint, a real Chroma folder and a real Dagster instance (its
event log and asset-check storage are what the UI reads)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter, DagsterInstance
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.base import PartitionKeyFilter

import dispute_platform.assets.disputes as disputes_module
from dispute_platform.domain.caps import CAP_NAMES
from dispute_platform.domain.review import DecisionRefused
from dispute_platform.store import reviewers
from dispute_platform.workflow.execute import ExecutionRefused, execute_decision
from dispute_platform_tests.integration.harness import (
    build_test_resources,
    decide,
    refunds,
    reviewer,
    run_intake,
    run_review,
    sample_event,
    store_events,
)

pytestmark = pytest.mark.integration

CASES = ["CASE-1063", "CASE-1065", "CASE-1025", "CASE-1060"]
#         full_refund 49  credit 125   full_refund 490  invalid (outside the window)
OVER = "CASE-1065"  # has already spent $0.002 on the model, over the $0.001 per-dispute cap
AI_PROPOSAL = AssetKey("ai_proposal")


@pytest.fixture
def batch(db, sqs, pg_url, tmp_path, chroma_dir, monkeypatch):
    instance = DagsterInstance.ephemeral()
    resources = build_test_resources(pg_url, sqs, tmp_path)
    store_events(db, [sample_event(c) for c in CASES])
    db.transact(lambda cur: cur.execute("UPDATE workflow_states SET llm_cost = 0.002 WHERE case_id = %s", (OVER,)))
    # Count the evaluations: one per run, over the run's disputes (the real function runs).
    evaluations: list[list[str]] = []
    real = disputes_module.evaluate_stored
    monkeypatch.setattr(
        disputes_module, "evaluate_stored", lambda db, keys, *a, **k: evaluations.append(list(keys)) or real(db, keys, *a, **k)
    )
    result = run_intake(instance, resources, CASES)
    monkeypatch.undo()
    assert evaluations == [CASES], "the cap checks evaluate once per run, over the run's disputes"
    return instance, resources, result


def check_record(instance: DagsterInstance, name: str, case_id: str):
    [latest] = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AI_PROPOSAL, name), limit=1, partition_filter=PartitionKeyFilter(key=case_id)
    )
    return latest


def test_one_dispute_over_the_cost_cap_is_blocked_and_the_run_succeeds(db, batch):
    instance, resources, result = batch
    assert result.success  # one dispute over a cap does not paint the batch run red
    assert not [e for e in result.all_events if e.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")]

    statuses = {r["case_id"]: r for r in db.fetch_all("SELECT case_id, status, status_reason FROM workflow_states")}
    assert statuses[OVER]["status"] == "blocked" and "cost_within_cap" in statuses[OVER]["status_reason"]
    assert statuses["CASE-1063"]["status"] == "pending_review" and statuses["CASE-1025"]["status"] == "pending_review"
    assert statuses["CASE-1060"]["status"] == "invalid"

    # One evaluation per dispute with a proposal and per cap, each with that dispute's figures.
    evaluations = {(e.partition, e.check_name): e for e in result.get_asset_check_evaluations()}
    proposed = ["CASE-1063", "CASE-1065", "CASE-1025"]
    assert sorted(evaluations) == sorted((c, n) for c in CASES for n in CAP_NAMES)
    assert all(evaluations[("CASE-1060", n)].metadata["checked"].text == "no proposal" for n in CAP_NAMES)
    failed = sorted(k for k, e in evaluations.items() if not e.passed)
    assert failed == [(OVER, "cost_within_cap")]
    cost = evaluations[(OVER, "cost_within_cap")]
    assert cost.metadata["figure"].value == pytest.approx(0.002) and cost.metadata["cap"].value == pytest.approx(0.001)
    assert cost.metadata["dispute_status"].text == "blocked" and OVER in cost.description
    assert "over the cap" in cost.description and "blocked" in cost.description
    assert not [e for e in evaluations.values() if "disputes_checked" in e.metadata or "max_figure" in e.metadata]
    amount = evaluations[("CASE-1025", "amount_within_refundable")]
    assert amount.metadata["figure"].value == 490.0  # its own amount, not the batch's largest

    # The instance (what the UI's Checks tab reads) holds the same verdicts per partition.
    for case_id in proposed:
        for name in CAP_NAMES:
            record = check_record(instance, name, case_id)
            want = (
                AssetCheckExecutionRecordStatus.FAILED
                if (case_id, name) == (OVER, "cost_within_cap")
                else AssetCheckExecutionRecordStatus.SUCCEEDED
            )
            assert record.status == want, (case_id, name, record.status)
            assert record.run_id == result.run_id
    # ... and in Postgres, the rows execution demands, one per dispute and cap.
    rows = db.fetch_all("SELECT case_id, check_name, passed, figure, cap FROM check_results ORDER BY case_id, check_name")
    assert len(rows) == 12
    assert [(r["case_id"], r["check_name"]) for r in rows if not r["passed"]] == [(OVER, "cost_within_cap")]
    over = next(r for r in rows if (r["case_id"], r["check_name"]) == (OVER, "cost_within_cap"))
    assert over["figure"] == Decimal("0.002") and over["cap"] == Decimal("0.001")

    assert {r["dagster_run_id"] for r in db.fetch_all("SELECT dagster_run_id FROM check_results")} == {result.run_id}


def test_the_blocked_dispute_is_never_executed_and_the_others_proceed(db, batch):
    instance, resources, result = batch
    assert result.success
    with pytest.raises(DecisionRefused) as refused:
        decide(db, OVER, "approved", "alice")
    assert refused.value.status_code == 409
    # Even with the state forced to decided, execution refuses the proposal that failed a check.
    mallory = reviewer(db, "mallory")
    db.transact(lambda cur: (
        reviewers.insert_decision(cur, case_id=OVER, version=1, decision="approved", reviewer=mallory, comments="",
                                  modified=None, effective_action="credit", effective_amount=Decimal("125.00"), source="api"),
        cur.execute("UPDATE workflow_states SET status = 'decided' WHERE case_id = %s", (OVER,)),
    ))  # fmt: skip
    with pytest.raises(ExecutionRefused, match="failed cap checks"):
        execute_decision(db, OVER, payments=resources["payments"], billing=resources["billing"], crm=resources["crm"],
                         email=resources["email"], run_id=None, caps=resources["limits"].caps)  # fmt: skip

    decide(db, "CASE-1063", "approved", "alice")
    assert run_review(instance, resources, "CASE-1063").success
    assert [str(r["amount"]) for r in refunds(db)] == ["49.00"]
    assert db.fetch_one("SELECT status FROM workflow_states WHERE case_id = 'CASE-1063'")["status"] == "completed"


def test_a_dispute_stopped_by_validation_is_skipped_with_its_reason(db, batch):
    instance, _, result = batch
    materialized = instance.get_materialized_partitions(AI_PROPOSAL)
    assert materialized == {"CASE-1063", "CASE-1065", "CASE-1025"}  # not CASE-1060
    observations = instance.fetch_observations(
        AssetRecordsFilter(asset_key=AI_PROPOSAL, asset_partitions=["CASE-1060"]), limit=10
    )
    [observation] = [r.event_log_entry.asset_observation for r in observations.records]
    reason = db.fetch_one("SELECT status_reason FROM workflow_states WHERE case_id = 'CASE-1060'")["status_reason"]
    assert observation.description.startswith("skipped: dispute is invalid") and reason and reason in observation.description
    assert observation.metadata["status"].text == "skipped"
    # Its checks have no proposal to check, and say so (not left "Skipped" beside the others).
    for name in CAP_NAMES:
        record = check_record(instance, name, "CASE-1060")
        assert record.status == AssetCheckExecutionRecordStatus.SUCCEEDED
        evaluation = record.event.dagster_event.asset_check_evaluation_data
        assert evaluation.description.startswith("CASE-1060: no proposal to check (dispute is invalid")
    assert not db.fetch_all("SELECT 1 FROM check_results WHERE case_id = 'CASE-1060'")  # nothing execution could use
    # enriched_context, which made the verdict, is materialized with it.
    assert "CASE-1060" in instance.get_materialized_partitions(AssetKey("enriched_context"))
