"""What one evaluation produces, row by row: the replayed disputes and the rows it could not use.
Shared by the run (evaluation/run.py) and the report (evaluation/report.py), so neither imports
the other."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field


class Problem(BaseModel):
    stage: str  # complaints | history | replay | propose
    row: int | None = None
    line: int | None = None
    complaint_id: str | None = None
    reason: str


class DisputeResult(BaseModel):
    """One replayed complaint: what really happened and what the platform proposed."""

    row: int
    case_id: str
    issue: str
    sub_issue: str
    dispute_type: str
    amount: Decimal
    amount_nominal: bool
    company_response: str
    truth: str
    action: str
    proposed_amount: Decimal
    confidence: float
    basis: str = "none"
    raw_confidence: float | None = None
    calibration: str | None = None
    predicted: str
    knn_predicted: str | None = None  # the kNN baseline at the engine's k
    knn_by_k: dict[int, str] = Field(default_factory=dict)
    escalated: bool
    stopped_by_cap: bool
    failed_caps: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    similar_cases: list[str] = Field(default_factory=list)
    cited_policies: list[str] = Field(default_factory=list)
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    would_be_cost_usd: Decimal
    would_be_cached_input_tokens: int = 0
    would_be_cost_cached_usd: Decimal = Decimal("0")
    model: str
    latency_ms: int = 0
