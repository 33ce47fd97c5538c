"""Issue 14 with real PostgreSQL and Chroma: the proposal_calibration asset fits from the history
and the reviews and stores the fit, the sensor refits when the history changes, and proposals
made with the fit keep every rule-decided answer of the sample world."""

from __future__ import annotations

import importlib
from decimal import Decimal

import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context, materialize

from dispute_platform.assets.knowledge import proposal_calibration
from dispute_platform.domain.knowledge import HistoricalResolution
from dispute_platform.domain.world import SandboxWorld
from dispute_platform.store import calibration as calibration_sql
from dispute_platform.store import history
from dispute_platform.store.audit import jsonb
from dispute_platform.store.reviewers import system_reviewer
from dispute_platform.workflow.calibration import fit_calibration, load_calibration
from dispute_platform.workflow.knowledge import load_seed_history, read_seed_history
from dispute_platform_tests.definitions import calibration_sensor
from dispute_platform_tests.integration.harness import build_test_resources, reviewer, run_intake, sample_events, store_events

pytestmark = pytest.mark.integration


def _generator():
    return importlib.import_module("dispute_platform.sandbox.build")


@pytest.fixture
def fitted(db, sqs, pg_url, tmp_path, chroma_dir):
    """The seed history in Postgres (Chroma already holds it) and one materialised calibration."""
    load_seed_history(db)
    resources = build_test_resources(pg_url, sqs, tmp_path)
    instance = DagsterInstance.ephemeral()
    result = materialize([proposal_calibration], instance=instance, resources=resources)
    assert result.success
    return instance, resources, result


def test_the_asset_fits_from_history_and_stores_the_fit(db, fitted):
    _, _, result = fitted
    stored = load_calibration(db)
    assert stored is not None
    meta = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["calibration_id"].value == stored.calibration_id
    seed = read_seed_history()
    decided = [h for h in seed if h.action != "escalate"]
    assert stored.history_cases == len(seed) and stored.held_back == len(decided)  # a small history: all held back
    assert stored.money_back_rate == pytest.approx(sum(h.action != "deny" for h in decided) / len(decided), abs=1e-6)
    assert {"precedent:money_back", "precedent:no_money"} <= set(stored.maps)
    for fitted_map in stored.maps.values():
        assert fitted_map.values == sorted(fitted_map.values) and all(0 < v < 1 for v in fitted_map.values)


def test_the_sensor_refits_only_when_the_history_changed(db, fitted):
    instance, resources, _ = fitted
    context = build_sensor_context(
        instance=instance, resources={"postgres": resources["postgres"], "vectors": resources["vectors"]}
    )
    assert isinstance(calibration_sensor(context), SkipReason)
    extra = HistoricalResolution(
        case_id="HIST-NEW-1", dispute_type="general", description="new", action="deny", source="platform"
    )
    db.transact(lambda cur: history.upsert_historical(cur, [extra]))
    request = calibration_sensor(
        build_sensor_context(instance=instance, resources={"postgres": resources["postgres"], "vectors": resources["vectors"]})
    )
    assert isinstance(request, RunRequest) and request.run_key.startswith("calibration:")


def test_reviews_calibrate_policy_proposals_and_automated_decisions_are_left_out(db, fitted):
    _, resources, _ = fitted

    people = {"alice": reviewer(db, "alice"), "auto-policy": db.transact(lambda cur: system_reviewer(cur, "auto-policy"))}

    def reviewed(cur, n: int, who: str, decision: str, confidence: float) -> None:
        case_id = f"CASE-R{n}"
        document = {"action": "full_refund", "amount": "10.00", "currency": "USD", "confidence": confidence, "basis": "policy",
                    "raw_confidence": confidence, "provider": "precedent", "model": "precedent-rules", "prompt_version": "v",
                    "input_tokens": 1, "output_tokens": 1, "cost_usd": "0", "cache_hit": False, "latency_ms": 0, "flags": []}  # fmt: skip
        cur.execute(
            """INSERT INTO proposals (case_id, version, status, proposal, action, amount, currency, confidence, provider, model,
                                      prompt_version, input_tokens, output_tokens, cost_usd)
               VALUES (%s, 1, 'decided', %s, 'full_refund', 10.00, 'USD', %s, 'precedent', 'precedent-rules', 'v', 1, 1, 0)""",
            (case_id, jsonb(document), confidence),
        )  # fmt: skip
        cur.execute(
            """INSERT INTO review_decisions (case_id, proposal_version, decision, reviewer, reviewer_id, effective_action,
                                             effective_amount, source)
               VALUES (%s, 1, %s, %s, %s, 'full_refund', 10.00, 'api')""",
            (case_id, decision, who, people[who].id),
        )  # fmt: skip

    def write(cur) -> None:
        for n in range(30):
            reviewed(cur, n, "alice", "approved" if n % 3 else "rejected", 0.9)
        for n in range(30, 60):
            reviewed(cur, n, "auto-policy", "approved", 0.9)

    db.transact(write)
    rows = db.transact(calibration_sql.reviewed_proposals)
    assert len(rows) == 30 and {r["basis"] for r in rows} == {"policy"}
    calibration = fit_calibration(resources["vectors"], read_seed_history(), reviewed=rows, max_held_back=50)
    policy = calibration.maps["policy:money_back"]
    assert policy.n == 30 and policy.apply(0.9) == pytest.approx((20 + 2 * 20 / 30) / 32, abs=1e-4)


def test_proposals_made_with_the_fit_keep_every_rule_decided_answer(db, fitted, sqs):
    instance, resources, _ = fitted
    calibration = load_calibration(db)
    store_events(db, sample_events())
    keys = [e["case_id"] for e in sample_events()]
    assert run_intake(instance, resources, keys).success
    generator = _generator()
    world = SandboxWorld.load()
    rows = {r["case_id"]: r for r in db.fetch_all("SELECT case_id, action, amount, proposal FROM proposals")}
    assert rows
    for case_id, row in rows.items():
        decision = generator.decide_world_case(world, case_id)
        proposal = row["proposal"]
        if decision.outcome.decided:
            assert (row["action"], row["amount"]) == (decision.action, decision.amount), case_id
            assert proposal["basis"] == "policy"
        else:  # the rules escalated for want of records: precedent, or still a person
            assert decision.action == "escalate" and proposal["basis"] in ("precedent", "none"), case_id
        if proposal["calibration"] is not None:
            assert proposal["calibration"] == calibration.calibration_id and proposal["basis"] == "precedent"
        assert proposal["raw_confidence"] is not None
    assert any(r["proposal"]["calibration"] for r in rows.values())  # the fit was used
    assert Decimal("0") <= min(Decimal(str(r["amount"])) for r in rows.values())
