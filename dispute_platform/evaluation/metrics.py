"""Metrics of an evaluation: pure functions over labels and numbers.

Labels are the two real outcomes, "money_back" and "no_money". A proposal is mapped onto them by
`predicted_label`: full_refund, partial_refund and credit move money ("money_back"); deny does
not ("no_money"); escalate, and a proposal stopped by a cap, leave the decision to a person and
pay nothing automatically, so they count as "no_money" for accuracy and are reported apart as
the escalation rate (with the accuracy on the disputes the machine did decide beside it).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

MONEY_BACK = "money_back"
NO_MONEY = "no_money"
LABELS: tuple[str, ...] = (MONEY_BACK, NO_MONEY)
MONEY_ACTIONS = frozenset({"full_refund", "partial_refund", "credit"})
ESCALATE = "escalate"


def predicted_label(action: str | None, *, stopped_by_cap: bool = False) -> str:
    """The outcome a proposal amounts to (see the module docstring)."""
    if stopped_by_cap or action is None:
        return NO_MONEY
    return MONEY_BACK if action in MONEY_ACTIONS else NO_MONEY


def confusion_matrix(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = LABELS) -> dict[str, dict[str, int]]:
    """matrix[true][predicted] = count, for every pair of `labels` (zeros included); a label
    outside `labels` in either sequence is an error, not silently dropped."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    known = set(labels)
    matrix = {t: {p: 0 for p in labels} for t in labels}
    for t, p in zip(truth, predicted, strict=True):
        if t not in known or p not in known:
            raise ValueError(f"label {t if t not in known else p!r} is not one of {list(labels)}")
        matrix[t][p] += 1
    return matrix


def accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float | None:
    """Share of predictions equal to the truth; None for no data (not 0, not 1)."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    if not truth:
        return None
    return sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth)


def recall_by_class(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """For each class present in the truth: the share of its items predicted as it."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} true labels but {len(predicted)} predictions")
    totals = Counter(truth)
    hits = Counter(t for t, p in zip(truth, predicted, strict=True) if t == p)
    return {label: hits[label] / n for label, n in sorted(totals.items())}


def balanced_accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float | None:
    """Mean recall over the classes present in the truth (sklearn's definition): a constant
    predictor scores 1/k whatever the class balance. None for no data."""
    recalls = recall_by_class(truth, predicted)
    return sum(recalls.values()) / len(recalls) if recalls else None


def majority_class(labels: Iterable[str], order: Sequence[str] = LABELS) -> str | None:
    """The most frequent label; ties go to the earlier label in `order` (then alphabetical)."""
    counts = Counter(labels)
    if not counts:
        return None
    rank = {label: i for i, label in enumerate(order)}
    best = max(counts.values())
    tied = [label for label, n in counts.items() if n == best]
    return min(tied, key=lambda label: (rank.get(label, len(rank)), label))


def majority_baseline(reference: Sequence[str], truth: Sequence[str]) -> dict[str, object]:
    """Always predict the majority class of `reference` (the history the system could learn
    from; the evaluated set itself when there is none), scored on `truth`."""
    label = majority_class(reference or truth)
    predicted = [label] * len(truth) if label is not None else []
    return {
        "class": label,
        "accuracy": accuracy(truth, predicted) if label is not None else None,
        "balanced_accuracy": balanced_accuracy(truth, predicted) if label is not None else None,
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]): always one of the values, None for no data."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside [0, 100]")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    """mean, p50, p95 and max (None each for no data), and the count."""
    if not values:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "max": None}
    return {
        "n": len(values),
        "mean": sum(values) / len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values),
    }


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None
