"""Evaluation metrics and cost arithmetic: pure functions, examples and properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispute_platform.domain.costs import DEFAULT_PRICES
from dispute_platform.evaluation import metrics
from dispute_platform.evaluation.costing import (
    cacheable_tokens,
    cached_tokens_in_sequence,
    prompt_tokens,
    shared_prefix_length,
    would_be_cost,
)
from dispute_platform.evaluation.metrics import MONEY_BACK as M
from dispute_platform.evaluation.metrics import NO_MONEY as N

labels = st.sampled_from([M, N])
pairs = st.lists(st.tuples(labels, labels), max_size=60)


def test_predicted_label_of_each_action():
    assert [metrics.predicted_label(a) for a in ("full_refund", "partial_refund", "credit")] == [M, M, M]
    assert metrics.predicted_label("deny") == N
    assert metrics.predicted_label("escalate") == N
    assert metrics.predicted_label("full_refund", stopped_by_cap=True) == N
    assert metrics.predicted_label(None) == N


def test_accuracy_and_confusion_matrix_example():
    truth = [M, M, M, N, N, N, N, N]
    predicted = [M, N, N, N, N, N, N, M]
    assert metrics.accuracy(truth, predicted) == 5 / 8
    assert metrics.confusion_matrix(truth, predicted) == {M: {M: 1, N: 2}, N: {M: 1, N: 4}}
    assert metrics.recall_by_class(truth, predicted) == {M: 1 / 3, N: 4 / 5}
    assert metrics.balanced_accuracy(truth, predicted) == pytest.approx((1 / 3 + 4 / 5) / 2)


def test_empty_data_has_no_score():
    assert metrics.accuracy([], []) is None
    assert metrics.balanced_accuracy([], []) is None
    assert metrics.majority_class([]) is None
    assert metrics.percentile([], 95) is None
    assert metrics.distribution([]) == {"n": 0, "mean": None, "p50": None, "p95": None, "max": None}


def test_mismatched_lengths_and_unknown_labels_are_errors():
    with pytest.raises(ValueError):
        metrics.accuracy([M], [])
    with pytest.raises(ValueError):
        metrics.confusion_matrix([M], ["maybe"])


def test_majority_baseline():
    history = [N, N, N, M]
    truth = [M, N, N, N, N]
    assert metrics.majority_baseline(history, truth) == {"class": N, "accuracy": 0.8, "balanced_accuracy": 0.5}
    # Without history the evaluated set's own majority is used.
    assert metrics.majority_baseline([], [M, M, N])["class"] == M
    # A tie goes to the first label (money_back), deterministically.
    assert metrics.majority_class([N, M]) == M


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert metrics.percentile(values, 95) == 95
    assert metrics.percentile(values, 50) == 50
    assert metrics.percentile(values, 100) == 100
    assert metrics.percentile([7], 99) == 7
    assert metrics.percentile([3, 1, 2], 0) == 1
    with pytest.raises(ValueError):
        metrics.percentile([1], 101)


@given(pairs)
def test_confusion_matrix_adds_up_to_the_accuracy(data):
    truth = [t for t, _ in data]
    predicted = [p for _, p in data]
    matrix = metrics.confusion_matrix(truth, predicted)
    assert sum(sum(row.values()) for row in matrix.values()) == len(data)
    for label in metrics.LABELS:
        assert sum(matrix[label].values()) == truth.count(label)
    if data:
        diagonal = sum(matrix[label][label] for label in metrics.LABELS)
        assert metrics.accuracy(truth, predicted) == pytest.approx(diagonal / len(data))
        assert 0 <= metrics.balanced_accuracy(truth, predicted) <= 1


@given(st.lists(labels, min_size=1, max_size=60), labels)
def test_a_constant_predictor_has_balanced_accuracy_one_over_classes(truth, constant):
    k = len(set(truth))
    expected = (1 / k) if constant in truth else 0.0
    assert metrics.balanced_accuracy(truth, [constant] * len(truth)) == pytest.approx(expected)


@given(st.lists(labels, min_size=1, max_size=60))
def test_perfect_predictions_score_one_and_the_majority_baseline_never_beats_it(truth):
    assert metrics.accuracy(truth, truth) == 1 and metrics.balanced_accuracy(truth, truth) == 1
    baseline = metrics.majority_baseline(truth, truth)
    assert baseline["accuracy"] == max(truth.count(M), truth.count(N)) / len(truth)


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=80), st.floats(0, 100), st.floats(0, 100))
def test_percentile_is_a_value_and_monotone(values, q1, q2):
    low, high = sorted((q1, q2))
    assert metrics.percentile(values, low) in values
    assert metrics.percentile(values, low) <= metrics.percentile(values, high)
    assert metrics.percentile(values, 100) == max(values)


# --- cost arithmetic ---------------------------------------------------------------------------


def test_cacheable_tokens_follow_openais_rule():
    assert cacheable_tokens(1023, 3000) == 0  # below the minimum prefix
    assert cacheable_tokens(2000, 1000) == 0  # a prompt under 1,024 tokens is never cached
    assert cacheable_tokens(1024, 3000) == 1024
    assert cacheable_tokens(1151, 3000) == 1024
    assert cacheable_tokens(1152, 3000) == 1152
    assert cacheable_tokens(5000, 1500) == 1408  # never more than the prompt itself


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_cacheable_tokens_are_whole_steps_within_the_shared_prefix(shared, total):
    cached = cacheable_tokens(shared, total)
    assert cached <= min(shared, total)
    assert cached == 0 or (cached >= 1024 and (cached - 1024) % 128 == 0)


def test_shared_prefixes_of_real_messages():
    system = {"role": "system", "content": "rules " * 1500}
    a = prompt_tokens([system, {"role": "user", "content": "dispute A"}])
    b = prompt_tokens([system, {"role": "user", "content": "dispute B"}])
    shared = shared_prefix_length(a, b)
    assert 1500 <= shared < len(a)
    [(first_shared, first_cached), (second_shared, second_cached)] = cached_tokens_in_sequence([a, b])
    assert (first_shared, first_cached) == (0, 0)
    assert second_shared == shared and second_cached == cacheable_tokens(shared, len(b)) > 0


def test_would_be_cost_of_gpt_4o_mini():
    price = DEFAULT_PRICES["gpt-4o-mini"]
    # 1,000 input tokens at $0.15/1M + 250 output tokens at $0.60/1M
    assert would_be_cost(price, 1000) == Decimal("0.00030000")
    assert would_be_cost(price, 2048, cached_input_tokens=1024) == Decimal("0.00038040")


# -- issue 14: the report's kNN baseline, basis breakdown and reliability table ------------------


def _result(n: int, truth: str, action: str, confidence: float, basis: str, knn: str):
    from decimal import Decimal

    from dispute_platform.evaluation.results import DisputeResult

    return DisputeResult(
        row=n, case_id=f"CFPB-{n}", issue="i", sub_issue="s", dispute_type="general", amount=Decimal("10"), amount_nominal=False,
        company_response="r", truth=truth, action=action, proposed_amount=Decimal("0"), confidence=confidence, basis=basis,
        predicted=metrics.predicted_label(action), escalated=action == "escalate", stopped_by_cap=False, input_tokens=1,
        output_tokens=1, cost_usd=Decimal("0"), would_be_cost_usd=Decimal("0"), model="m", knn_predicted=knn, knn_by_k={3: knn},
    )  # fmt: skip


def test_report_scores_the_knn_baseline_and_the_reliability_of_decided_disputes():
    from dispute_platform.evaluation.report import build_report, render_markdown

    mb, no = metrics.MONEY_BACK, metrics.NO_MONEY
    results = [
        _result(1, mb, "full_refund", 0.95, "precedent", mb),  # right, band 0.90-1.00
        _result(2, no, "full_refund", 0.92, "precedent", mb),  # wrong, band 0.90-1.00
        _result(3, no, "deny", 0.55, "policy", no),  # right, band 0.50-0.60
        _result(4, mb, "escalate", 0.5, "none", no),  # escalated: not in the reliability table
    ]
    report = build_report(results=results, problems=[], history_truth=[no, no, mb], meta={}, knn_k=3)
    knn = report["knn_baseline"]
    assert knn["accuracy"] == 0.5 and knn["balanced_accuracy"] == 0.5 and knn["balanced_accuracy_by_k"] == {"3": 0.5}
    bands = {b["band"]: b for b in report["reliability"]["decided"]["bands"]}
    assert bands["0.90-1.00"]["n"] == 2 and bands["0.90-1.00"]["accuracy"] == 0.5
    assert bands["0.50-0.60"]["n"] == 1 and bands["0.50-0.60"]["accuracy"] == 1.0
    assert report["reliability"]["decided"]["n"] == 3 and set(report["reliability"]) == {
        "decided",
        "decided_policy",
        "decided_precedent",
    }
    assert report["by_basis"]["none"] == {"n": 1, "escalated": 1, "decided": 0, "accuracy": 0.0, "accuracy_on_decided": None}
    assert report["metrics"]["accuracy_on_decided"] == round(2 / 3, 4) and report["metrics"]["escalation_rate"] == 0.25
    markdown = render_markdown(report | {"meta": {"complaints_file": "f", "rows_read": 4, "history_cases": 3, "provider": "p",
                                                   "model": "m"}})  # fmt: skip
    assert "| 0.90-1.00 | 2 / 0.94 / 50.0%" in markdown and "kNN baseline" in markdown
