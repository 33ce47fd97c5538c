"""Confidence that means something: raw confidences mapped to how often such proposals were right.

A provider's confidence is a score, not a probability: the rules engine's 0.93 was written by
hand, a vote share of 0.6 is not "right 60% of the time". Calibration learns what they mean from
outcomes: for each basis and side ("precedent:money_back", "policy:no_money" ...) an isotonic
map (pool adjacent violators: the best non-decreasing step function in squared error) from the
raw confidence to the observed rate of right outcomes, fitted on past cases the fit holds back
(each one is voted on by the others, never by itself).

Small samples make isotonic steps of 0% or 100%; each step is shrunk towards the key's overall
rate by `PSEUDO_COUNT` cases, so a step of 3 right out of 3 reads 0.8-something, not certainty.
Pure functions and models; the fitting shell is workflow/calibration.py.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from dispute_platform.domain.models import Action, ResolutionProposal

PSEUDO_COUNT = 2.0
MIN_PAIRS = 20  # fewer outcomes than this for a key: no map, the proposal stays uncalibrated
RELIABILITY_EDGES: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class CalibrationMap(BaseModel):
    """A non-decreasing step function, linear between steps and flat beyond the ends."""

    key: str
    lows: list[float]  # each step covers raw confidences [low, high]
    highs: list[float]
    values: list[float]  # calibrated value of each step, non-decreasing
    counts: list[int]
    n: int
    rate: float  # right outcomes over all pairs of the key

    def apply(self, raw: float) -> float:
        if not self.values:
            return self.rate
        if raw <= self.lows[0]:
            return self.values[0]
        if raw >= self.highs[-1]:
            return self.values[-1]
        i = bisect_right(self.lows, raw) - 1
        if raw <= self.highs[i]:
            return self.values[i]
        # Between step i and step i + 1.
        span = self.lows[i + 1] - self.highs[i]
        t = (raw - self.highs[i]) / span if span > 0 else 1.0
        return round(self.values[i] + t * (self.values[i + 1] - self.values[i]), 6)


def _pool(blocks: list[list[float]]) -> list[list[float]]:
    """Pool adjacent violators over blocks [low, high, sum_y, weight, count]."""
    out: list[list[float]] = []
    for block in blocks:
        out.append(list(block))
        while len(out) > 1 and out[-2][2] / out[-2][3] > out[-1][2] / out[-1][3]:
            last = out.pop()
            prev = out[-1]
            out[-1] = [prev[0], last[1], prev[2] + last[2], prev[3] + last[3], prev[4] + last[4]]
    return out


def fit_isotonic(key: str, raw: Sequence[float], right: Sequence[bool]) -> CalibrationMap | None:
    """The isotonic map of `right` on `raw`; None below MIN_PAIRS pairs."""
    if len(raw) != len(right):
        raise ValueError(f"{len(raw)} confidences but {len(right)} outcomes")
    if len(raw) < MIN_PAIRS:
        return None
    rate = sum(right) / len(right)
    # Ties in the raw confidence are one block from the start: a step function cannot split them.
    grouped: dict[float, list[float]] = {}
    for x, y in zip(raw, right, strict=True):
        grouped.setdefault(float(x), []).append(1.0 if y else 0.0)
    blocks = [[x, x, sum(ys), float(len(ys)), float(len(ys))] for x, ys in sorted(grouped.items())]
    pooled = _pool(blocks)
    # Shrink each step towards the overall rate, then pool again: shrinking steps of different
    # sizes can undo the order.
    shrunk = [[b[0], b[1], b[2] + PSEUDO_COUNT * rate, b[3] + PSEUDO_COUNT, b[4]] for b in pooled]
    final = _pool(shrunk)
    return CalibrationMap(
        key=key,
        lows=[round(b[0], 6) for b in final],
        highs=[round(b[1], 6) for b in final],
        values=[round(b[2] / b[3], 6) for b in final],
        counts=[int(b[4]) for b in final],
        n=len(raw),
        rate=round(rate, 6),
    )


class ReliabilityRow(BaseModel):
    band: str  # "0.60-0.70"
    low: float
    high: float
    n: int
    mean_confidence: float | None
    accuracy: float | None


def reliability_table(
    confidences: Sequence[float], right: Sequence[bool], edges: Sequence[float] = RELIABILITY_EDGES
) -> list[ReliabilityRow]:
    """Accuracy and count per confidence band (the last band includes its upper edge). A
    calibrated confidence has accuracy close to its mean confidence in every band."""
    if len(confidences) != len(right):
        raise ValueError(f"{len(confidences)} confidences but {len(right)} outcomes")
    rows = []
    for i, (low, high) in enumerate(zip(edges, edges[1:], strict=False)):
        last = i == len(edges) - 2
        members = [(c, r) for c, r in zip(confidences, right, strict=True) if low <= c < high or (last and c == high)]
        n = len(members)
        rows.append(
            ReliabilityRow(
                band=f"{low:.2f}-{high:.2f}",
                low=low,
                high=high,
                n=n,
                mean_confidence=round(sum(c for c, _ in members) / n, 4) if n else None,
                accuracy=round(sum(r for _, r in members) / n, 4) if n else None,
            )
        )
    return rows


def expected_calibration_error(rows: Sequence[ReliabilityRow]) -> float | None:
    """Count-weighted mean |accuracy - confidence| over the bands; None for no data."""
    total = sum(r.n for r in rows)
    if not total:
        return None
    return round(sum(r.n * abs((r.accuracy or 0) - (r.mean_confidence or 0)) for r in rows) / total, 4)


class ProposalCalibration(BaseModel):
    """Everything a proposal needs from history: the base rate the precedent vote balances
    against, and a map per basis and side."""

    calibration_id: str = ""
    fitted_at: datetime | None = None
    money_back_rate: float | None = Field(default=None, ge=0, le=1)
    history_cases: int = 0
    held_back: int = 0
    maps: dict[str, CalibrationMap] = Field(default_factory=dict)
    reliability: dict[str, list[ReliabilityRow]] = Field(default_factory=dict)

    def with_id(self) -> ProposalCalibration:
        """The calibration named by a digest of what it maps (not of when it was fitted)."""
        content = json.dumps(
            {"rate": self.money_back_rate, "maps": {k: m.model_dump() for k, m in sorted(self.maps.items())}},
            sort_keys=True,
        )
        return self.model_copy(update={"calibration_id": "cal-" + hashlib.sha256(content.encode()).hexdigest()[:12]})


def side_of(action: Action) -> str | None:
    """The outcome a proposal's action amounts to: money back, no money, or no decision."""
    if action.moves_money:
        return "money_back"
    if action == Action.DENY:
        return "no_money"
    return None


def calibration_key(basis: str, action: Action) -> str | None:
    side = side_of(action)
    return f"{basis}:{side}" if side is not None else None


def calibrate(proposal: ResolutionProposal, calibration: ProposalCalibration | None) -> ResolutionProposal:
    """The proposal with its confidence calibrated when a map exists for its basis and side;
    otherwise the provider's figure stays, marked uncalibrated. The raw figure is always kept
    (a later fit learns from it)."""
    raw = proposal.raw_confidence if proposal.raw_confidence is not None else proposal.confidence
    key = calibration_key(proposal.basis, proposal.action)
    fitted = calibration.maps.get(key) if calibration is not None and key is not None else None
    if fitted is None or calibration is None:
        return proposal.model_copy(update={"raw_confidence": raw, "confidence": raw, "calibration": None})
    value = min(1.0, max(0.0, fitted.apply(raw)))
    return proposal.model_copy(
        update={"raw_confidence": raw, "confidence": round(value, 4), "calibration": calibration.calibration_id}
    )


def is_held_back(case_id: str, share: float) -> bool:
    """Deterministic choice of the past cases a fit holds back: about `share` of them, the same
    ones in every run (a digest of the id, not its order)."""
    if share <= 0:
        return False
    if share >= 1:
        return True
    digest = hashlib.sha256(f"calibration-holdout:{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share
