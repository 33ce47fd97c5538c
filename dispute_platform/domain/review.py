"""Whether a reviewer's decision may be recorded, and what it means. Pure rules shared by the
decision endpoint and the Dagster launchpad, so both answer the same way.

Errors carry the HTTP status the endpoint answers with: 409 when the dispute is not in a state to
take this decision (not pending, stale version, already decided), 422 when the decision itself
does not hold (a modified amount above the refundable limit, approving an escalation ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from dispute_platform.domain.models import Action, ModifiedResolution
from dispute_platform.domain.money import above_threshold, usd_value
from dispute_platform.domain.states import AWAITING_DECISION, Status


class DecisionRefused(Exception):
    def __init__(self, status_code: int, reason: str):
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


@dataclass(frozen=True)
class PendingDispute:
    """What the rules need to know about the dispute being decided."""

    case_id: str
    status: str
    proposal_version: int
    proposed_action: Action
    proposed_amount: Decimal
    disputed_amount: Decimal
    refundable_amount: Decimal | None
    currency: str = "USD"


@dataclass(frozen=True)
class PriorDecision:
    reviewer_id: int
    reviewer: str
    decision: str
    effective_action: str
    effective_amount: Decimal


@dataclass(frozen=True)
class DecisionOutcome:
    effective_action: str  # an Action value, or "none" for a rejection
    effective_amount: Decimal
    final: bool  # False while a four-eyes decision waits for its second reviewer
    new_status: Status
    changed: dict[str, object]  # what the reviewer changed from the proposal


def _limit_for(action: Action, dispute: PendingDispute) -> Decimal:
    if action.is_refund:
        return min(dispute.disputed_amount, dispute.refundable_amount or Decimal("0"))
    return dispute.disputed_amount


def evaluate_decision(
    *,
    decision: str,
    reviewer_id: int,
    reviewer: str,
    proposal_version: int,
    modified: ModifiedResolution | None,
    dispute: PendingDispute,
    prior: list[PriorDecision],
    four_eyes_threshold_usd: Decimal,
    usd_rates: Mapping[str, Decimal],
) -> DecisionOutcome:
    """Whether `reviewer` (a reviewer record: two records are two people) may decide, and what the
    decision means. Four-eyes compares the USD value of the amount with the threshold; an amount in
    a currency without a rate always needs two reviewers."""
    if dispute.status not in AWAITING_DECISION:
        raise DecisionRefused(409, f"dispute {dispute.case_id} is {dispute.status}, not pending review")
    if proposal_version != dispute.proposal_version:
        raise DecisionRefused(
            409, f"proposal version {proposal_version} is stale: the current proposal is version {dispute.proposal_version}"
        )
    if any(p.reviewer_id == reviewer_id for p in prior):
        raise DecisionRefused(409, f"{reviewer} has already decided version {proposal_version} of {dispute.case_id}")
    if prior and dispute.status != Status.AWAITING_SECOND_REVIEW:
        raise DecisionRefused(409, f"a decision on version {proposal_version} of {dispute.case_id} already exists")

    if decision != "modified" and modified is not None:
        raise DecisionRefused(422, "modified_resolution is only allowed with decision 'modified'")

    if dispute.status == Status.AWAITING_SECOND_REVIEW:
        if not prior:
            raise DecisionRefused(409, f"{dispute.case_id} waits for a second review but has no first decision on record")
        first = prior[0]
        if decision == "modified":
            raise DecisionRefused(
                422, "a second review confirms ('approved') or refuses ('rejected') the first reviewer's decision"
            )
        if decision == "rejected":
            return DecisionOutcome("none", Decimal("0"), True, Status.REJECTED, {"second_review": "rejected"})
        return DecisionOutcome(
            first.effective_action, first.effective_amount, True, Status.DECIDED, {"second_review": "approved"}
        )

    if decision == "rejected":
        return DecisionOutcome("none", Decimal("0"), True, Status.REJECTED, {"action": "rejected"})

    action: Action
    amount: Decimal
    changed: dict[str, object]
    if decision == "approved":
        if dispute.proposed_action == Action.ESCALATE:
            raise DecisionRefused(
                422,
                "an escalated proposal has no action to approve: decide 'modified' with an action and amount, or 'rejected'",
            )
        action, amount, changed = dispute.proposed_action, dispute.proposed_amount, {}
    else:
        if modified is None:
            raise DecisionRefused(422, "decision 'modified' needs modified_resolution (action, amount, reason)")
        action, amount = modified.action, modified.amount
        if action == Action.ESCALATE:
            raise DecisionRefused(422, "a decision must resolve the dispute: 'escalate' is not an executable action")
        if action == Action.DENY and amount != 0:
            raise DecisionRefused(422, "a denial carries no amount: send amount 0")
        if action.moves_money and amount <= 0:
            raise DecisionRefused(422, f"{action.value} needs an amount above zero")
        limit = _limit_for(action, dispute)
        if action.moves_money and amount > limit:
            what = "still refundable on the charge" if action.is_refund else "disputed"
            raise DecisionRefused(422, f"modified amount {amount} is above the {limit} {what}")
        changed = {
            key: {"proposed": str(before), "decided": str(after)}
            for key, before, after in (
                ("action", dispute.proposed_action.value, action.value),
                ("amount", dispute.proposed_amount, amount),
            )
            if str(before) != str(after)
        }

    # Four-eyes: a decision that moves more than the threshold needs a second, different reviewer.
    if action.moves_money and above_threshold(amount, dispute.currency, four_eyes_threshold_usd, usd_rates):
        if usd_value(amount, dispute.currency, usd_rates) is None:
            changed = changed | {"four_eyes": f"no USD rate for {dispute.currency}: two reviewers decide"}
        return DecisionOutcome(action.value, amount, False, Status.AWAITING_SECOND_REVIEW, changed)
    return DecisionOutcome(action.value, amount, True, Status.DECIDED, changed)


# Reviewer names: printable ASCII, so that two names cannot look alike in another script, and
# unique whatever their case (the database enforces lower(name) unique).
_REVIEWER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@+-]{0,63}")
SYSTEM_REVIEWERS = frozenset({"auto-policy"})


def check_reviewer_name(name: str) -> str:
    """The name to store, or ValueError saying what a name may be."""
    cleaned = name.strip()
    if not _REVIEWER_NAME.fullmatch(cleaned) or "  " in cleaned:
        raise ValueError(
            f"{name!r} is not a reviewer name: 1 to 64 characters of letters, digits, space and ._@+- "
            "(ASCII), starting with a letter or digit"
        )
    if cleaned.lower() in SYSTEM_REVIEWERS:
        raise ValueError(f"{cleaned!r} is reserved for a platform lane")
    return cleaned
