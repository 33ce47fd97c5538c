"""Gather a dispute's context from the CRM, billing and payments (concurrently) and validate it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from dispute_platform.domain.context import enrich
from dispute_platform.domain.models import (
    BillingRecord,
    CrmRecord,
    DisputeEvent,
    EnrichedContext,
    PaymentRecord,
)
from dispute_platform.resources.providers import BillingProvider, CaseNotFound, CRMProvider, PaymentsProvider


@dataclass(frozen=True)
class Providers:
    crm: CRMProvider
    billing: BillingProvider
    payments: PaymentsProvider


@dataclass(frozen=True)
class CaseMissing:
    """The CRM has no such case: a reason to stop, not an error to retry."""

    case_id: str
    reason: str


def gather(event: DisputeEvent, providers: Providers, pool: ThreadPoolExecutor) -> tuple[CrmRecord, BillingRecord, PaymentRecord]:
    """All three fetches at once when the event names the customer; otherwise the CRM first
    (it knows whose case it is), then billing and payments together."""
    crm_future = pool.submit(providers.crm.fetch_case, event.case_id)
    customer_id = event.customer_id
    if customer_id is None:
        customer_id = crm_future.result().case.customer_id
    billing_future = pool.submit(providers.billing.fetch_billing, customer_id)
    payments_future = pool.submit(providers.payments.fetch_payments, customer_id)
    crm = crm_future.result()
    if crm.case.customer_id != customer_id:
        # The event named someone else: fetch the case owner's records, and let validation
        # reject the mismatch with both names in the reason.
        billing_future.cancel()
        payments_future.cancel()
        billing_future = pool.submit(providers.billing.fetch_billing, crm.case.customer_id)
        payments_future = pool.submit(providers.payments.fetch_payments, crm.case.customer_id)
    return crm, billing_future.result(), payments_future.result()


def enrich_event(event: DisputeEvent, providers: Providers, pool: ThreadPoolExecutor) -> EnrichedContext | CaseMissing:
    try:
        crm, billing, payments = gather(event, providers, pool)
    except CaseNotFound as exc:
        return CaseMissing(event.case_id, str(exc))
    return enrich(event, crm, billing, payments)
