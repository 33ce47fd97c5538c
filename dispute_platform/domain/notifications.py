"""What reviewers and customers are told. Pure text composition; sending is a resource's job."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import quote

from dispute_platform.domain.masking import mask_pii
from dispute_platform.domain.models import PolicyHit, ResolutionProposal, SimilarCase


def dagster_partition_url(ui_url: str, asset: str, case_id: str) -> str:
    return f"{ui_url.rstrip('/')}/assets/{asset}?partition={quote(case_id)}"


def desk_dispute_url(api_url: str, case_id: str) -> str:
    """The dispute's page in the review desk (served by the decision endpoint)."""
    return f"{api_url.rstrip('/')}/desk/disputes/{quote(case_id, safe='')}"


def review_request(
    *,
    case_id: str,
    customer: str,
    segment: str,
    dispute_type: str,
    disputed: Decimal,
    currency: str,
    description: str,
    proposal: ResolutionProposal,
    version: int,
    policies: list[PolicyHit],
    cases: list[SimilarCase],
    ui_url: str,
    api_url: str,
    escalated_for_sla: bool = False,
) -> tuple[str, str]:
    """Subject and body of the e-mail that asks an approver to decide."""
    prefix = "[SLA passed] " if escalated_for_sla else ""
    subject = (
        f"{prefix}Review dispute {case_id}: {proposal.action.value} {proposal.amount} {currency} ({dispute_type}, {segment})"
    )
    cited = "\n".join(f"  - {p.citation} {p.title} (relevance {p.score:.2f})" for p in policies) or "  (none)"
    similar = (
        "\n".join(
            f"  - {c.case_id}: {c.dispute_type}, {c.action} {c.resolved_amount or ''} (similarity {c.score:.2f})" for c in cases
        )
        or "  (none)"
    )
    flags = ", ".join(proposal.flags) or "none"
    body = f"""A billing dispute is waiting for your decision.

Dispute      {case_id} ({dispute_type})
Customer     {customer} ({segment})
Disputed     {disputed} {currency}
Description  {mask_pii(description)[:600]}

Proposal v{version}: {proposal.action.value} {proposal.amount} {currency}
Confidence   {proposal.confidence:.2f} ({"calibrated" if proposal.calibration else "uncalibrated"}; decided by {proposal.basis})   by {proposal.provider} / {proposal.model}
Reasoning    {proposal.reasoning}
Flags        {flags}
Cost         ${proposal.cost_usd} ({proposal.input_tokens} tokens in, {proposal.output_tokens} out)

Policies cited:
{cited}
Similar past cases:
{similar}

Decide in the review desk: {desk_dispute_url(api_url, case_id)}
See it in Dagster: {dagster_partition_url(ui_url, "ai_proposal", case_id)}

Or decide through the API (your reviewer token identifies you):
  curl -X POST {api_url.rstrip("/")}/human-review/decision \\
    -H "Authorization: Bearer $REVIEWER_TOKEN" -H "Content-Type: application/json" \\
    -d '{{"case_id": "{case_id}", "proposal_version": {version}, "decision": "approved", "comments": "..."}}'
  decision: approved | rejected | modified (with "modified_resolution": {{"action": ..., "amount": ..., "reason": ...}})
Or materialise review_decision for partition {case_id} from the Dagster launchpad with the same fields.
"""
    return subject, body


def customer_notice(*, case_id: str, customer: str, action: str, amount: Decimal, currency: str, reason: str) -> tuple[str, str]:
    """Subject and body of the message that tells the customer the outcome."""
    outcomes = {
        "full_refund": f"we have refunded {amount} {currency} to your original payment method",
        "partial_refund": f"we have refunded {amount} {currency} to your original payment method",
        "credit": f"we have added a credit of {amount} {currency} to your account",
        "deny": "we were not able to offer a refund or credit",
        "escalate": "your case has been passed to a specialist who will contact you",
    }
    subject = f"Your billing dispute {case_id}"
    body = f"""Dear {customer},

Thank you for contacting Brightwave about your billing dispute {case_id}.
After review, {outcomes.get(action, "your case has been closed")}.

{mask_pii(reason)}

Refunds usually appear on your statement within 5-10 business days.
If you have questions, reply to this message and quote {case_id}.

Brightwave Billing Support
"""
    return subject, body
