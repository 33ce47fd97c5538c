"""Tell the approvers a proposal waits for them: an e-mail and a message on the review queue.

A failed notification never loses the proposal: it is saved first, the failure is written to
the audit trail, and the dispute is listed by GET /human-review/pending either way.
"""

from __future__ import annotations

import logging

from dispute_platform.domain.models import EnrichedContext
from dispute_platform.domain.notifications import dagster_partition_url, review_request
from dispute_platform.resources.email import EmailSender
from dispute_platform.resources.sqs import SQSResource
from dispute_platform.settings import Settings
from dispute_platform.store import repo
from dispute_platform.store.db import Database
from dispute_platform.store.transitions import transition
from dispute_platform.workflow.propose import ProposalOutcome

log = logging.getLogger(__name__)


def notify_reviewers(
    db: Database,
    email: EmailSender,
    sqs: SQSResource,
    settings: Settings,
    context: EnrichedContext,
    outcome: ProposalOutcome,
    version: int,
    *,
    run_id: str | None,
    escalated_for_sla: bool = False,
) -> None:
    case, account = context.crm.case, context.crm.account
    proposal = outcome.proposal
    api_url = f"http://{settings.api_host}:{settings.api_port}"
    subject, body = review_request(
        case_id=case.case_id,
        customer=f"{account.name} ({account.customer_id})",
        segment=account.segment.value,
        dispute_type=case.dispute_type,
        disputed=case.amount,
        currency=case.currency,
        description=case.description,
        proposal=proposal,
        version=version,
        policies=outcome.policies,
        cases=outcome.cases,
        ui_url=settings.dagster_ui_url,
        api_url=api_url,
        escalated_for_sla=escalated_for_sla,
    )
    sent: dict[str, str] = {}
    errors: dict[str, str] = {}
    try:
        sent["email"] = email.send([settings.approver_email], subject, body, reference=f"review-{case.case_id}-v{version}")
    except Exception as exc:  # noqa: BLE001 - recorded below; the proposal stands
        errors["email"] = f"{exc.__class__.__name__}: {exc}"
    try:
        message_id = sqs.notify_review(
            {
                "case_id": case.case_id,
                "proposal_version": version,
                "action": proposal.action.value,
                "amount": str(proposal.amount),
                "currency": proposal.currency,
                "confidence": proposal.confidence,
                "basis": proposal.basis,
                "calibration": proposal.calibration,
                "flags": proposal.flags,
                "escalated_for_sla": escalated_for_sla,
                "dagster_url": dagster_partition_url(settings.dagster_ui_url, "ai_proposal", case.case_id),
            }
        )
        if message_id:
            sent["review_queue"] = message_id
    except Exception as exc:  # noqa: BLE001
        errors["review_queue"] = f"{exc.__class__.__name__}: {exc}"
    for channel, error in errors.items():
        log.warning("could not notify reviewers of %s by %s: %s", case.case_id, channel, error)
    db.transact(
        lambda cur: repo.audit(
            cur,
            case.case_id,
            "ai_proposal",
            "reviewers_notified" if not errors else "notification_failed",
            {"version": version, "sent": sent, "errors": errors, "sla": escalated_for_sla},
            run_id=run_id,
        )
    )


def escalate_overdue(db: Database, case_id: str, proposal_version: int, sla_hours: float) -> bool:
    """The SLA passed: mark the dispute escalated, if it is still pending review on the same
    proposal version (a reviewer may have decided since the sweep read it). Returns whether it moved."""
    from dispute_platform.domain.states import Status

    reason = f"pending review longer than {sla_hours:g} h"
    return db.transact(lambda cur: transition(
        cur, case_id, Status.REVIEW_ESCALATED, "review_decision", reason, allowed_from={Status.PENDING_REVIEW, Status.MODEL_FAILED},
        expect_version=proposal_version,
    ))  # fmt: skip


def notify_overdue(db: Database, email: EmailSender, sqs: SQSResource, settings: Settings, state: dict) -> None:
    """Tell the approvers again, louder, about a dispute the SLA sweep escalated."""
    from dispute_platform.domain.models import ResolutionProposal

    stored = dict(state["resolution_proposal"] or {})
    version = stored.pop("version", state["proposal_version"])
    proposal = ResolutionProposal.model_validate(stored)
    crm = state["crm_data"] or {}
    account = crm.get("account", {})
    subject, body = review_request(
        case_id=state["case_id"],
        customer=f"{account.get('name', '?')} ({state['customer_id']})",
        segment=state["segment"] or "?",
        dispute_type=state["dispute_type"] or "?",
        disputed=state["disputed_amount"],
        currency=state["currency"] or "USD",
        description=(crm.get("case") or {}).get("description", ""),
        proposal=proposal,
        version=version,
        policies=[],
        cases=[],
        ui_url=settings.dagster_ui_url,
        api_url=f"http://{settings.api_host}:{settings.api_port}",
        escalated_for_sla=True,
    )
    errors: dict[str, str] = {}
    try:
        email.send([settings.approver_email], subject, body, reference=f"sla-{state['case_id']}-v{version}")
    except Exception as exc:  # noqa: BLE001
        errors["email"] = f"{exc.__class__.__name__}: {exc}"
    try:
        sqs.notify_review({"case_id": state["case_id"], "proposal_version": version, "escalated_for_sla": True})
    except Exception as exc:  # noqa: BLE001
        errors["review_queue"] = f"{exc.__class__.__name__}: {exc}"
    db.transact(lambda cur: repo.audit(cur, state["case_id"], "review_decision", "sla_escalated",
                                       {"version": version, "errors": errors}))  # fmt: skip
