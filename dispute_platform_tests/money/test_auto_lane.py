"""The policy auto-approval lane (issue 14): off by default; when on, a qualifying proposal is
approved as `auto-policy` through the reviewers' own path and executed by the review sensor with
every money guarantee; a sampled share is reviewed after the fact, and a reversal is a new,
audited dispute action."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from dagster import DagsterInstance, build_sensor_context
from hypothesis import given
from hypothesis import strategies as st

from dispute_platform.domain.auto_lane import AutoLaneRule, auto_verdict, sampled_for_review
from dispute_platform.domain.calibration import CalibrationMap, ProposalCalibration
from dispute_platform.domain.caps import CapLimits, evaluate_caps
from dispute_platform.domain.models import Action, ResolutionProposal
from dispute_platform.domain.money import DEFAULT_USD_RATES
from dispute_platform.domain.review import DecisionRefused
from dispute_platform.resources.limits import Limits
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.store import calibration as calibration_store
from dispute_platform.workflow.auto_lane import review_after_the_fact
from dispute_platform_tests.definitions import review_decision_sensor
from dispute_platform_tests.integration.harness import reviewer, run_review
from dispute_platform_tests.money.support import REFUND_49, REFUND_490, ledger, pending, status

pytestmark = pytest.mark.integration

LANE_ON = Limits(auto_approve_max_usd=Decimal("100"), auto_approve_min_confidence=0.9, auto_approve_sample_rate=1.0)


def _proposal(**changes) -> ResolutionProposal:
    base = dict(action=Action.FULL_REFUND, amount=Decimal("49"), currency="USD", confidence=0.95, basis="policy",
                calibration="cal-x", reasoning="r", model="rules", provider="precedent", prompt_version="v",
                input_tokens=100, output_tokens=50, cost_usd=Decimal("0"))  # fmt: skip
    return ResolutionProposal(**(base | changes))


def _caps(p: ResolutionProposal):
    return evaluate_caps(p, Decimal("500"), Decimal("500"), CapLimits())


RULE = AutoLaneRule(max_usd=Decimal("100"), min_confidence=0.9, sample_rate=0.1)


@pytest.mark.parametrize("changes, why", [
    ({}, None),
    ({"basis": "precedent"}, "basis precedent"),
    ({"calibration": None}, "not calibrated"),
    ({"confidence": 0.89}, "below"),
    ({"action": Action.ESCALATE, "amount": Decimal("0")}, "needs a person"),
    ({"amount": Decimal("100.01")}, "above the lane"),
    ({"currency": "XTS"}, "no USD rate"),
    ({"flags": ["amount_capped_to_disputed:600->500"]}, "flagged"),
    ({"output_tokens": 5000}, "caps not all passing"),
])  # fmt: skip
def test_the_lane_takes_only_what_every_rule_allows(changes, why):
    proposal = _proposal(**changes)
    verdict = auto_verdict(proposal, _caps(proposal), RULE, DEFAULT_USD_RATES)
    assert verdict.eligible is (why is None) and (why is None or why in verdict.reason), verdict


def test_the_lane_is_off_by_default():
    assert not auto_verdict(_proposal(), _caps(_proposal()), AutoLaneRule(), DEFAULT_USD_RATES).eligible
    assert Limits().auto_approve_max_usd == 0


@given(st.decimals(min_value=0, max_value=10_000, places=2), st.sampled_from(["USD", "GBP", "JPY", "KWD", "XTS"]),
       st.floats(min_value=0, max_value=1))  # fmt: skip
def test_nothing_above_the_lanes_usd_value_or_below_its_confidence_qualifies(amount, currency, confidence):
    proposal = _proposal(amount=amount, currency=currency, confidence=confidence)
    verdict = auto_verdict(proposal, _caps(proposal), RULE, DEFAULT_USD_RATES)
    if verdict.eligible:
        assert amount * DEFAULT_USD_RATES[currency] <= RULE.max_usd and confidence >= RULE.min_confidence


def test_sampling_is_stable_and_near_its_rate():
    picked = [sampled_for_review(f"CASE-{i}", 0.1) for i in range(5000)]
    assert 0.08 < sum(picked) / len(picked) < 0.12
    assert picked == [sampled_for_review(f"CASE-{i}", 0.1) for i in range(5000)]
    assert not any(sampled_for_review(f"CASE-{i}", 0) for i in range(100))


def _calibrated(db) -> None:
    """A fitted calibration in which policy proposals are right 97% of the time."""
    flat = {key: CalibrationMap(key=key, lows=[0.0], highs=[1.0], values=[0.97], counts=[60], n=60, rate=0.97)
            for key in ("policy:money_back", "policy:no_money")}  # fmt: skip
    fit = ProposalCalibration(fitted_at=datetime.now(UTC), money_back_rate=0.3, history_cases=60, maps=flat).with_id()
    db.transact(lambda cur: calibration_store.save_calibration(
        cur, fit.model_dump(mode="json"), history_version="test", history_cases=60, held_back=0, run_id=None))  # fmt: skip


def test_a_qualifying_dispute_is_executed_as_auto_policy_and_reviewed_after_the_fact(db, sqs, pg_url, tmp_path, chroma_dir):
    _calibrated(db)
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_49, REFUND_490], limits=LANE_ON)
    # 49.00 qualifies; 490.00 is above the lane's 100 USD and waits for a person.
    assert status(db, REFUND_49) == "decided" and status(db, REFUND_490) == "pending_review"
    decision = db.fetch_one("SELECT reviewer, source, decision FROM review_decisions WHERE case_id = %s", (REFUND_49,))
    assert decision == {"reviewer": "auto-policy", "source": "auto-policy", "decision": "approved"}
    assert not list((tmp_path / "outbox").glob(f"*review-{REFUND_49}*.eml"))  # no reviewer asked
    assert list((tmp_path / "outbox").glob(f"*review-{REFUND_490}*.eml"))

    tick = review_decision_sensor(build_sensor_context(
        instance=DagsterInstance.ephemeral(),
        resources={"postgres": PostgresResource(database_url=pg_url), "sqs": sqs, "email": resources["email"]}))  # fmt: skip
    assert [r.partition_key for r in tick.run_requests] == [REFUND_49]
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("disputes", [REFUND_49])
    assert run_review(instance, resources, REFUND_49).success
    assert status(db, REFUND_49) == "completed" and len(ledger(db, REFUND_49)) == 1

    # Sampled for a person's look (rate 1.0 here); the lane's record cannot sign in or review itself.
    from dispute_platform.store import actions

    waiting = db.transact(lambda cur: actions.sampled_awaiting_review(cur))
    assert [w["case_id"] for w in waiting] == [REFUND_49]
    with pytest.raises(DecisionRefused):
        review_after_the_fact(db, REFUND_49, reviewer(db, "carol"), "reversed", "")  # a reversal says why
    review_after_the_fact(db, REFUND_49, reviewer(db, "carol"), "reversed", "duplicate was already refunded by phone")
    with pytest.raises(DecisionRefused) as twice:
        review_after_the_fact(db, REFUND_49, reviewer(db, "dave"), "upheld", "")
    assert twice.value.status_code == 409
    events = [r["event"] for r in db.fetch_all("SELECT event FROM audit_log WHERE case_id = %s ORDER BY id", (REFUND_49,))]
    assert "auto_approved" in events and "post_review_reversed" in events
    assert len(ledger(db, REFUND_49)) == 1  # a reversal is a record for people, never a second movement
    assert db.transact(lambda cur: actions.sampled_awaiting_review(cur)) == []


def test_with_the_lane_off_everything_waits_for_a_person(db, sqs, pg_url, tmp_path, chroma_dir):
    _calibrated(db)
    pending(db, pg_url, sqs, tmp_path, [REFUND_49])
    assert status(db, REFUND_49) == "pending_review"
    assert db.fetch_all("SELECT * FROM review_decisions") == []
