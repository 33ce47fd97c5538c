"""Gather a dispute's context from the CRM, billing and payments (concurrently) and validate it.

`enrich_batch` is the enriched_context step for a run's disputes: it fetches and validates each
one not yet past this step, moves its state (enriched, invalid, fetch_failed) with its audit row,
and returns one `EnrichOutcome` per dispute. `stored_columns` / `load_context` are how the context
is kept in `workflow_states` and rebuilt from it (with the event from `dispute_events`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from dispute_platform.domain.context import enrich
from dispute_platform.domain.models import (
    BillingRecord,
    CrmRecord,
    DisputeEvent,
    EnrichedContext,
    PaymentRecord,
)
from dispute_platform.domain.states import ENRICHMENT_PENDING, INTAKE_MAY_RUN, Status
from dispute_platform.resources.providers import BillingProvider, CaseNotFound, CRMProvider, PaymentsProvider
from dispute_platform.store import repo
from dispute_platform.store.db import Database
from dispute_platform.store.transitions import transition

STEP = "enriched_context"


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


# --- the step over a run's disputes -------------------------------------------------------------

EnrichResult = Literal["enriched", "invalid", "fetch_failed", "skipped"]


@dataclass(frozen=True)
class EnrichOutcome:
    """What enriched_context did for one dispute: `metadata` is what its partition shows, `error`
    the reason a fetch failed (the state is fetch_failed and the step is retried)."""

    case_id: str
    result: EnrichResult
    metadata: dict[str, Any]
    error: str | None = None


def _money(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def context_metadata(enriched: EnrichedContext) -> dict[str, Any]:
    verdict, account = enriched.verdict, enriched.crm.account
    return {
        "customer": f"{account.name} ({account.customer_id})",
        "segment": account.segment.value,
        "dispute_type": verdict.dispute_type,
        "disputed_amount": _money(verdict.disputed_amount),
        "billed_amount": _money(verdict.billed_amount),
        "refundable_amount": _money(verdict.refundable_amount),
        "days_since_charge": verdict.days_since_charge,
        "charge": verdict.disputed_charge_id or "-",
        "valid": verdict.valid,
        "verdict": verdict.summary,
    }


def stored_columns(enriched: EnrichedContext) -> dict[str, Any]:
    """The `workflow_states` columns an enriched dispute keeps: each system's record as fetched
    (the event stays in `dispute_events`). `relevant_charge_ids` is the charge selection the desk
    shows; `load_context` derives it again and ignores the stored one."""
    return {
        "customer_id": enriched.crm.case.customer_id,
        "dispute_type": enriched.crm.case.dispute_type,
        "segment": enriched.crm.account.segment.value,
        "disputed_amount": enriched.crm.case.amount,
        "currency": enriched.crm.case.currency,
        "crm_data": enriched.crm.model_dump(mode="json"),
        "billing_data": enriched.billing.model_dump(mode="json"),
        "payment_data": enriched.payments.model_dump(mode="json")
        | {"relevant_charge_ids": [c.charge_id for c in enriched.relevant_charges]},
    }


def load_context(state: Mapping[str, Any], event: Mapping[str, Any] | None) -> EnrichedContext:
    """Rebuild the enriched context from what enriched_context stored (no second fetch): the
    dispute's first event (`dispute_events` body, as enriched_context read it) and the three
    records. Rows written before the event stayed in `dispute_events` alone carry it in
    `crm_data["event"]`; that copy is the fallback, and derived keys are dropped."""
    crm_data = dict(state["crm_data"])
    legacy_event = crm_data.pop("event", None)
    payment_data = dict(state["payment_data"])
    payment_data.pop("relevant_charge_ids", None)
    body = event if event is not None else legacy_event
    if body is None:
        raise ValueError(f"{state['case_id']}: no stored event to rebuild the enriched context from")
    return enrich(
        DisputeEvent.model_validate(body),
        CrmRecord.model_validate(crm_data),
        BillingRecord.model_validate(state["billing_data"]),
        PaymentRecord.model_validate(payment_data),
    )


def _record(db: Database, key: str, result: EnrichedContext | CaseMissing | Exception, run_id: str | None) -> EnrichOutcome:
    """Move one fetched dispute's state and audit it; the outcome says what its partition shows."""
    if isinstance(result, Exception):
        reason = f"{result.__class__.__name__}: {result}"
        db.transact(lambda cur: (
            transition(cur, key, Status.FETCH_FAILED, STEP, reason, run_id=run_id)
            and repo.audit(cur, key, STEP, "fetch_failed", {"error": reason}, run_id=run_id),
        ))  # fmt: skip
        return EnrichOutcome(key, "fetch_failed", {"status": "fetch failed", "error": reason}, error=reason)
    if isinstance(result, CaseMissing):
        missing = result
        db.transact(lambda cur: (
            transition(cur, key, Status.INVALID, STEP, missing.reason, run_id=run_id,
                       validation={"valid": False, "issues": [{"code": "case_not_found", "message": missing.reason}]})
            and repo.audit(cur, key, STEP, "invalid", {"reason": missing.reason}, run_id=run_id),
        ))  # fmt: skip
        return EnrichOutcome(key, "invalid", {"valid": False, "verdict": missing.reason})
    enriched = result
    verdict = enriched.verdict
    validation = verdict.model_dump(mode="json") | {"valid": verdict.valid}
    db.transact(lambda cur: (
        transition(
            cur, key, Status.ENRICHED if verdict.valid else Status.INVALID, STEP,
            None if verdict.valid else verdict.summary, run_id=run_id, validation=validation, **stored_columns(enriched),
        )
        and repo.audit(cur, key, STEP, "valid" if verdict.valid else "invalid", {"issues": validation["issues"]},
                       run_id=run_id),
    ))  # fmt: skip
    return EnrichOutcome(key, "enriched" if verdict.valid else "invalid", context_metadata(enriched))


def enrich_batch(
    db: Database,
    keys: Sequence[str],
    providers: Providers,
    *,
    fetches_in_flight: int,
    disputes_in_flight: int,
    refetch: bool,
    run_id: str | None,
) -> list[EnrichOutcome]:
    """Fetch, validate and record the disputes of `keys` not yet past this step (`refetch`: also
    those already enriched or invalid), `disputes_in_flight` at a time with `fetches_in_flight`
    provider calls shared among them. One outcome per key: the fetched ones in order, then the
    skipped. A fetch error is recorded (fetch_failed) and returned, not raised."""
    events, states = db.transact(lambda cur: (repo.events_for(cur, keys), repo.workflow_states(cur, keys)))
    # By the dispute's state: enriched or invalid already (an earlier attempt of this step, or an
    # earlier run) is done unless `refetch` asks for it again.
    allowed = INTAKE_MAY_RUN if refetch else ENRICHMENT_PENDING
    todo = [k for k in keys if k in events and states.get(k, {}).get("status") in allowed]

    def one(key: str) -> tuple[str, EnrichedContext | CaseMissing | Exception]:
        try:
            event = DisputeEvent.model_validate(events[key]["body"])
            return key, enrich_event(event, providers, fetch_pool)
        except Exception as exc:  # noqa: BLE001 - recorded per dispute as fetch_failed
            return key, exc

    # Threads and Postgres connections are sized together (settings.postgres_connections).
    with (
        ThreadPoolExecutor(max_workers=fetches_in_flight) as fetch_pool,
        ThreadPoolExecutor(max_workers=disputes_in_flight) as dispute_pool,
    ):
        results = list(dispute_pool.map(one, todo))
    outcomes = [_record(db, key, result, run_id) for key, result in results]
    fetched = set(todo)
    for key in keys:
        if key not in fetched:
            status = states.get(key, {}).get("status", "no workflow state")
            outcomes.append(EnrichOutcome(key, "skipped", {"status": f"not enriched again: dispute is {status}"}))
    return outcomes
