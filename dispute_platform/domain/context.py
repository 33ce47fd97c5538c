"""Assemble the enriched context of one dispute from what the three systems returned."""

from __future__ import annotations

from dispute_platform.domain.models import (
    BillingRecord,
    CrmRecord,
    DisputeEvent,
    EnrichedContext,
    PaymentRecord,
)
from dispute_platform.domain.validation import select_relevant_charges, validate_dispute

MAX_RELEVANT_CHARGES = 5


def enrich(
    event: DisputeEvent,
    crm: CrmRecord,
    billing: BillingRecord,
    payments: PaymentRecord,
    *,
    max_charges: int = MAX_RELEVANT_CHARGES,
) -> EnrichedContext:
    verdict = validate_dispute(event, crm, billing, payments)
    disputed = next((c for c in payments.charges if c.charge_id == verdict.disputed_charge_id), None)
    return EnrichedContext(
        case_id=crm.case.case_id,
        event=event,
        crm=crm,
        billing=billing,
        payments=payments,
        relevant_charges=select_relevant_charges(payments.charges, disputed, limit=max_charges),
        verdict=verdict,
    )
