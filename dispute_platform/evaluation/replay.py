"""A CFPB complaint replayed as one of our disputes: the enriched context the proposal stage
would see. Pure: no queue, no CRM, no money; every record is synthetic and says so in its ids.

How a complaint becomes a dispute (docs/evaluation.md repeats this):

- case `CFPB-<id>`, customer `CFPB-CUST-<id>`, opened at "Date received" (2025-01-01 when the
  row has no readable date), type from `datasets.cfpb.map_dispute_type`, description the masked
  narrative, subject "<Issue>: <Sub-issue>".
- amount: the narrative's one clear dollar figure (`parse_amount`), else a nominal 100.00 USD
  (the complaint still counts; its amount is marked nominal in the results).
- account: an active consumer account in good standing, segment `smb` (our smallest segment: a
  consumer is no enterprise, so no enterprise goodwill rule fires), opened a year before.
- one settled card charge of the disputed amount, 10 days before the case (inside the 120-day
  window), kind `late_fee` for a late-fee dispute and `one_time` (a card purchase) otherwise, no
  fulfilment record; no subscription, no invoices, no incidents. So the rules engine sees only
  what a complaint tells: a duplicate cannot be confirmed (one charge), a purchase has no
  contracted price, delivery has no record. A model provider also reads the narrative.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from dispute_platform.datasets.cfpb import CfpbComplaint, map_dispute_type, parse_amount
from dispute_platform.domain.context import enrich
from dispute_platform.domain.masking import mask_pii
from dispute_platform.domain.models import (
    MAX_DESCRIPTION_CHARS,
    Account,
    BillingRecord,
    Case,
    Charge,
    CrmRecord,
    DisputeEvent,
    DisputeType,
    EnrichedContext,
    PaymentRecord,
    Segment,
)

NOMINAL_AMOUNT = Decimal("100.00")
CHARGE_DAYS_BEFORE_CASE = 10
DEFAULT_RECEIVED = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
MAX_SUBJECT_CHARS = 300


def dispute_amount(complaint: CfpbComplaint) -> tuple[Decimal, bool]:
    """The disputed amount and whether it is the nominal stand-in."""
    amount = parse_amount(complaint.narrative)
    return (amount, False) if amount is not None else (NOMINAL_AMOUNT, True)


def complaint_context(complaint: CfpbComplaint) -> EnrichedContext:
    """The enriched context of a complaint replayed as a dispute (see the module docstring)."""
    dispute_type = map_dispute_type(complaint.issue, complaint.sub_issue, complaint.narrative)
    amount, _ = dispute_amount(complaint)
    opened_at = complaint.date_received or DEFAULT_RECEIVED
    customer_id = f"CFPB-CUST-{complaint.complaint_id}"
    charge_id = f"ch_cfpb_{complaint.complaint_id}"
    description = mask_pii(complaint.narrative)[:MAX_DESCRIPTION_CHARS]
    subject = ": ".join(part for part in (complaint.issue, complaint.sub_issue) if part)[:MAX_SUBJECT_CHARS]
    case = Case(
        case_id=complaint.case_id,
        customer_id=customer_id,
        dispute_type=dispute_type.value,
        amount=amount,
        currency="USD",
        description=description,
        subject=subject,
        opened_at=opened_at,
        charge_id=charge_id,
        origin="cfpb",
    )
    account = Account(
        customer_id=customer_id,
        name="CFPB consumer (replayed complaint)",
        segment=Segment.SMB,
        status="active",
        standing="good",
        country="US",
        created_at=(opened_at - timedelta(days=365)).date() if opened_at.year > 1 else date(2024, 1, 1),
    )
    charge = Charge(
        charge_id=charge_id,
        customer_id=customer_id,
        amount=amount,
        currency="USD",
        created_at=opened_at - timedelta(days=CHARGE_DAYS_BEFORE_CASE),
        status="succeeded",
        description=(complaint.sub_issue or complaint.issue or "card transaction")[:200],
        kind="late_fee" if dispute_type == DisputeType.LATE_FEE else "one_time",
    )
    event = DisputeEvent(
        case_id=complaint.case_id,
        customer_id=customer_id,
        event_id=f"cfpb-{complaint.complaint_id}",
        dispute_type=dispute_type.value,
        amount=amount,
        currency="USD",
        description=description,
        occurred_at=opened_at,
    )
    return enrich(event, CrmRecord(case=case, account=account), BillingRecord(), PaymentRecord(charges=[charge]))
