"""Calibrated confidence (issue 14): the isotonic map, the reliability table, and how a proposal
is calibrated (or honestly left uncalibrated)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispute_platform.domain.calibration import (
    MIN_PAIRS,
    ProposalCalibration,
    calibrate,
    expected_calibration_error,
    fit_isotonic,
    is_held_back,
    reliability_table,
)
from dispute_platform.domain.models import Action, ResolutionProposal


def proposal(action: Action = Action.FULL_REFUND, confidence: float = 0.7, basis: str = "precedent") -> ResolutionProposal:
    return ResolutionProposal(action=action, confidence=confidence, basis=basis, reasoning="r", model="m",
                              provider="p", prompt_version="v")  # fmt: skip


def test_too_few_outcomes_make_no_map():
    assert fit_isotonic("k", [0.5] * (MIN_PAIRS - 1), [True] * (MIN_PAIRS - 1)) is None


def test_a_raw_score_that_overstates_is_brought_down_to_what_happened():
    rng = random.Random(7)
    # Raw 0.9 right 30% of the time, raw 0.6 right 10%: the map learns both, in order.
    raw = [0.9] * 200 + [0.6] * 200
    right = [rng.random() < 0.3 for _ in range(200)] + [rng.random() < 0.1 for _ in range(200)]
    fitted = fit_isotonic("precedent:money_back", raw, right)
    assert fitted is not None
    assert fitted.apply(0.9) == pytest.approx(sum(right[:200]) / 200, abs=0.02)
    assert fitted.apply(0.6) == pytest.approx(sum(right[200:]) / 200, abs=0.02)
    assert fitted.apply(0.75) == pytest.approx((fitted.apply(0.6) + fitted.apply(0.9)) / 2, abs=1e-6)  # linear between
    assert fitted.apply(0.0) == fitted.apply(0.6) and fitted.apply(1.0) == fitted.apply(0.9)  # flat beyond the ends


def test_small_perfect_steps_are_shrunk_away_from_certainty():
    raw = [0.55] * 20 + [0.95] * 3
    right = [False] * 20 + [True] * 3
    fitted = fit_isotonic("k", raw, right)
    assert fitted is not None and 0.5 < fitted.apply(0.95) < 1.0 and fitted.apply(0.55) > 0.0


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(st.floats(min_value=0, max_value=1), st.booleans()), min_size=MIN_PAIRS, max_size=200),
       probes=st.lists(st.floats(min_value=-0.5, max_value=1.5), min_size=2, max_size=20))  # fmt: skip
def test_any_fit_is_a_non_decreasing_map_into_0_1(pairs, probes):
    fitted = fit_isotonic("k", [x for x, _ in pairs], [y for _, y in pairs])
    assert fitted is not None and fitted.n == len(pairs)
    assert fitted.values == sorted(fitted.values)
    assert sum(fitted.counts) == len(pairs)
    values = [fitted.apply(p) for p in sorted(probes)]
    assert values == sorted(values)  # monotone: a higher raw score never means less confidence
    assert all(0 <= v <= 1 for v in values)


def test_reliability_table_counts_and_accuracy_per_band():
    rows = reliability_table([0.05, 0.55, 0.58, 0.95, 1.0], [False, True, False, True, True])
    by_band = {r.band: r for r in rows}
    assert by_band["0.00-0.50"].n == 1 and by_band["0.00-0.50"].accuracy == 0.0
    assert by_band["0.50-0.60"].n == 2 and by_band["0.50-0.60"].accuracy == 0.5
    assert by_band["0.90-1.00"].n == 2 and by_band["0.90-1.00"].accuracy == 1.0  # 1.0 belongs to the last band
    assert sum(r.n for r in rows) == 5
    assert expected_calibration_error(rows) == pytest.approx((0.05 + 2 * abs(0.5 - 0.565) + 2 * abs(1 - 0.975)) / 5, abs=1e-3)


@settings(max_examples=100, deadline=None)
@given(pairs=st.lists(st.tuples(st.floats(min_value=0, max_value=1), st.booleans()), max_size=100))
def test_every_confidence_lands_in_exactly_one_band(pairs):
    rows = reliability_table([x for x, _ in pairs], [y for _, y in pairs])
    assert sum(r.n for r in rows) == len(pairs)


def _calibration() -> ProposalCalibration:
    raw = [0.6] * 30 + [0.9] * 30
    right = [i % 4 == 0 for i in range(30)] + [i % 2 == 0 for i in range(30)]
    fitted = fit_isotonic("precedent:money_back", raw, right)
    assert fitted is not None
    return ProposalCalibration(money_back_rate=0.2, maps={"precedent:money_back": fitted}).with_id()


def test_a_proposal_with_a_map_is_calibrated_and_keeps_its_raw_figure():
    calibration = _calibration()
    calibrated = calibrate(proposal(confidence=0.9), calibration)
    assert calibrated.raw_confidence == 0.9 and calibrated.calibration == calibration.calibration_id
    assert calibrated.confidence == pytest.approx(calibration.maps["precedent:money_back"].apply(0.9), abs=1e-4)
    assert calibrated.confidence < 0.9
    # Calibrating again starts from the raw figure, never from the calibrated one.
    assert calibrate(calibrated, calibration) == calibrated


@pytest.mark.parametrize(
    "made",
    [
        proposal(action=Action.ESCALATE),  # no decision, nothing to calibrate
        proposal(action=Action.DENY),  # no map for precedent:no_money
        proposal(basis="policy"),  # no map for policy:money_back
        proposal(basis="none"),
    ],
)
def test_without_a_map_the_raw_confidence_stays_and_says_so(made):
    calibrated = calibrate(made, _calibration())
    assert calibrated.calibration is None and calibrated.confidence == made.confidence == calibrated.raw_confidence


def test_no_calibration_at_all_is_uncalibrated():
    assert calibrate(proposal(), None).calibration is None


def test_the_calibration_id_names_the_maps_not_the_time():
    one, two = _calibration(), _calibration()
    assert one.calibration_id == two.calibration_id and one.calibration_id.startswith("cal-")
    other = one.model_copy(update={"money_back_rate": 0.3}).with_id()
    assert other.calibration_id != one.calibration_id


def test_the_held_back_sample_is_deterministic_and_about_its_share():
    ids = [f"CASE-{i}" for i in range(4000)]
    held = [i for i in ids if is_held_back(i, 0.25)]
    assert held == [i for i in ids if is_held_back(i, 0.25)]
    assert 850 < len(held) < 1150
    assert all(is_held_back(i, 1.0) for i in ids[:10]) and not any(is_held_back(i, 0.0) for i in ids[:10])


def test_the_history_sample_is_bounded_and_keeps_the_whole_historys_rate():
    from dispute_platform.domain.knowledge import HistoricalResolution
    from dispute_platform.workflow.calibration import sample_records

    actions = ["deny", "deny", "deny", "full_refund", "escalate"]
    records = [HistoricalResolution(case_id=f"H{i}", dispute_type="general", action=actions[i % 5]) for i in range(5000)]
    sample = sample_records(records, max_held_back=300)
    assert sample.cases == 5000 and sample.money_back_rate == pytest.approx(0.25)
    assert 200 < len(sample.held) <= 300 and all(r.action != "escalate" for r in sample.held)
    assert sample_records(records, max_held_back=300).held == sample.held  # the same cases every time
    everything = sample_records(records[:50], max_held_back=300)
    assert len(everything.held) == 40  # a small history: every case with an outcome is held back
