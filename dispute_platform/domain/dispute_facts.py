"""The DisputeFacts model and the small helpers the policy rules share.

Below the dispute-type registry: the rules (domain/rules.py) read these, the registry names the
rules, and validation and facts read the registry. How facts are derived from a dispute's
context is domain/facts.py, which re-exports everything here.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel

CENT = Decimal("0.01")
PLAN_CHARGE_KINDS = ("subscription", "renewal")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


class DisputeFacts(BaseModel):
    dispute_type: str
    segment: str
    standing: str
    disputed_amount: Decimal
    currency: str
    charge_id: str | None = None
    charge_amount: Decimal | None = None
    charge_kind: str | None = None
    refundable: Decimal | None = None
    billing_period: str | None = None  # monthly | annual
    monthly_fee: Decimal | None = None
    contracted_price: Decimal | None = None
    overcharge: Decimal | None = None
    duplicate_of: str | None = None
    outage_hours: Decimal | None = None
    days_to_cancel_request: int | None = None
    late_fees_prior_12m: int | None = None
    fulfillment_status: str | None = None
    days_since_charge: int | None = None


def months_used(days: int) -> int:
    """Each started 30-day month counts as used (POL-004 §3)."""
    return max(1, math.ceil(days / 30))
