"""What is embedded and how a dispute is turned into a retrieval query. Pure functions.

A past case and a new dispute are written in the same shape (type, amount range, segment,
description) so that their embeddings are comparable; the outcome is appended to the past case's
document because a reviewer reading a similar case wants to see how it ended.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, Field

from dispute_platform.domain.dispute_types import DISPUTE_TYPES
from dispute_platform.domain.masking import mask_pii

# Amount bands: disputes of similar size are treated alike more often than not.
_BANDS = (Decimal(25), Decimal(100), Decimal(500), Decimal(1000), Decimal(5000))
MAX_DOCUMENT_CHARS = 2000  # the encoder reads 256 word pieces; more text is wasted work

# Which policy categories are worth retrieving for a dispute type: a view of the registry
# (domain/dispute_types.py), where each type names them. The general policy (limits,
# thresholds) applies to every dispute.
POLICY_CATEGORIES: dict[str, list[str]] = {
    dispute_type: list(spec.policy_categories) for dispute_type, spec in DISPUTE_TYPES.items()
}


def amount_band(amount: Decimal | None) -> str:
    if amount is None:
        return "unknown"
    low = Decimal(0)
    for high in _BANDS:
        if amount < high:
            return f"{low}-{high}"
        low = high
    return f"over {low}"


class HistoricalResolution(BaseModel):
    """A past resolved dispute: the seed set, CFPB imports, and every executed resolution."""

    case_id: str
    customer_id: str | None = None
    segment: str | None = None
    dispute_type: str
    amount: Decimal | None = None
    currency: str = "USD"
    description: str = ""
    action: str
    resolved_amount: Decimal | None = None
    citations: list[str] = Field(default_factory=list)
    summary: str = ""
    outcome: str = "resolved"
    resolved_at: date | None = None
    source: str = "seed"

    def embedding_text(self) -> str:
        """What is embedded: the dispute itself, in the shape of a new dispute's query, so that
        dispute meets dispute. How it ended is stored beside the vector, not mixed into it (a long
        resolution text would pull every past case towards each other)."""
        return dispute_query_text(self.dispute_type, self.amount, self.segment, self.description)

    def document(self) -> str:
        """What a reviewer (and the prompt) reads: the dispute and how it ended."""
        amount = f"{self.resolved_amount} {self.currency}" if self.resolved_amount is not None else "no amount"
        cited = f" Policies: {', '.join(self.citations)}." if self.citations else ""
        return f"{self.embedding_text()}\nResolution: {self.action}, {amount}. {mask_pii(self.summary)}{cited}"[
            :MAX_DOCUMENT_CHARS
        ]

    def metadata(self) -> dict[str, str | float | int | bool]:
        """Chroma metadata: flat scalars only, no None."""
        raw: dict[str, str | float | int | bool] = {
            "case_id": self.case_id,
            "dispute_type": self.dispute_type,
            "segment": self.segment or "unknown",
            "amount": float(self.amount) if self.amount is not None else -1.0,
            "amount_band": amount_band(self.amount),
            "currency": self.currency,
            "action": self.action,
            "resolved_amount": float(self.resolved_amount) if self.resolved_amount is not None else -1.0,
            "citations": ",".join(self.citations),
            "summary": mask_pii(self.summary)[:500],
            "outcome": self.outcome,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else "",
            "source": self.source,
        }
        return raw


def dispute_query_text(dispute_type: str, amount: Decimal | None, segment: str | None, description: str) -> str:
    """The retrieval query for a dispute: the same shape as a past case's document head."""
    body = " ".join(mask_pii(description).split())
    return (
        f"Dispute type: {dispute_type.replace('_', ' ')}. Amount {amount_band(amount)}. "
        f"Customer segment: {segment or 'unknown'}. {body}"
    )[:MAX_DOCUMENT_CHARS]


def similarity(distance: float) -> float:
    """Chroma's cosine distance (1 - cos) as a score in [0, 1]."""
    return round(min(1.0, max(0.0, 1.0 - distance)), 4)
