"""The learning loop: a settled dispute becomes a past case (Postgres, then Chroma), and cached
model replies for its dispute type are dropped because their precedent may have changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from dispute_platform.domain.knowledge import HistoricalResolution
from dispute_platform.domain.states import EMBEDDING_MAY_RUN, Status
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.store import history, repo
from dispute_platform.store.db import Database
from dispute_platform.store.transitions import transition


@dataclass(frozen=True)
class Remembered:
    case_id: str
    record: HistoricalResolution | None
    skipped: str = ""


def resolution_record(state: dict) -> HistoricalResolution:
    """What was decided, why, amounts, policy cited and outcome, as a past case."""
    final = state["final_resolution"] or {}
    proposal = state["resolution_proposal"] or {}
    review = state["human_review_data"] or {}
    crm = state["crm_data"] or {}
    executed = final.get("outcome") == "executed"
    action = final.get("action") if executed else "deny"
    amount = Decimal(str(final.get("amount", "0"))) if executed else Decimal("0")
    who = ", ".join(review.get("reviewers", [])) or "a reviewer"
    changed = review.get("changed_from_proposal") or {}
    if executed:
        verdict = f"{who} {review.get('decision', 'approved')} {action} {amount} {state['currency']}"
        if changed:
            verdict += f" (proposal was {proposal.get('action')} {proposal.get('amount')})"
    else:
        verdict = f"{who} rejected the proposed {proposal.get('action')} {proposal.get('amount')}; no money moved"
    reasoning = str(proposal.get("reasoning", "")).removeprefix("Rules engine (not a model): ")
    comments = review.get("comments") or ""
    summary = f"{verdict}. {reasoning}" + (f" Reviewer: {comments}" if comments else "")
    return HistoricalResolution(
        case_id=state["case_id"],
        customer_id=state["customer_id"],
        segment=state["segment"],
        dispute_type=state["dispute_type"] or "general",
        amount=state["disputed_amount"],
        currency=state["currency"] or "USD",
        description=(crm.get("case") or {}).get("description", ""),
        action=action or "deny",
        resolved_amount=amount,
        citations=list(proposal.get("cited_policies", [])),
        summary=summary[:1500],
        outcome="resolved" if executed else "rejected",
        resolved_at=(state["completed_at"] or datetime.now(UTC)).date(),
        source="platform",
    )


def remember_resolution(db: Database, vectors: VectorStoreResource, case_id: str, run_id: str | None) -> Remembered:
    return remember_resolutions(db, vectors, [case_id], run_id)[0]


def remember_resolutions(
    db: Database,
    vectors: VectorStoreResource,
    case_ids: Sequence[str],
    run_id: str | None,
    *,
    skip_completed: bool = False,
) -> list[Remembered]:
    """Remember settled disputes, one `Remembered` per case id in the order given. The batch is
    read in one query, written to Postgres in one statement and embedded in one encoder call (a
    review run carries hundreds); each dispute is then settled in its own transaction, so a
    dispute that moved on meanwhile fails alone and a retry re-remembers only the unsettled ones
    (the upserts replace, never duplicate). `skip_completed`: a dispute already completed (an
    earlier attempt) is skipped as "already remembered" rather than remembered again."""
    states = db.transact(lambda cur: repo.workflow_states(cur, case_ids))
    remembered: dict[str, Remembered] = {}
    records: list[HistoricalResolution] = []
    for case_id in case_ids:
        state = states.get(case_id)
        if skip_completed and state is not None and state["status"] == Status.COMPLETED:
            remembered[case_id] = Remembered(case_id, None, "already remembered")
            continue
        if state is None or state["status"] not in EMBEDDING_MAY_RUN:
            why = f"dispute is {state['status'] if state else 'unknown'}, nothing to remember"
            remembered[case_id] = Remembered(case_id, None, why)
            continue
        record = resolution_record(state)
        records.append(record)
        remembered[case_id] = Remembered(case_id, record)
    if records:
        db.transact(lambda cur: history.upsert_historical(cur, records))
        vectors.upsert_resolutions(records)
        for record in records:
            db.transact(lambda cur, record=record: _settle(cur, record, vectors.embedder.identity, run_id))
    return [remembered[case_id] for case_id in case_ids]


def _settle(cur, record: HistoricalResolution, embedder: str, run_id: str | None) -> None:
    history.mark_embedded(cur, [record.case_id], embedder)
    dropped = repo.cache_invalidate_type(cur, record.dispute_type)
    transition(cur, record.case_id, Status.COMPLETED, "resolution_embedding", completed=True, run_id=run_id)
    repo.audit(cur, record.case_id, "resolution_embedding", "remembered",
               {"action": record.action, "amount": str(record.resolved_amount), "cache_entries_dropped": dropped},
               run_id=run_id)  # fmt: skip
