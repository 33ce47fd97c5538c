"""The offline proposal engine's first half: the company's policy rules, over a dispute's facts.

Rules first, precedent next: where the records settle a dispute the rules decide it, and similar
past cases only nudge the confidence (`weigh_precedent`); where they cannot (`RuleOutcome.decided`
is False), the engine follows the vote of similar past cases (domain/precedent_vote.py). It is
deterministic and costs nothing, and says so in every proposal it makes: its reasoning begins with
"Rules engine (not a model)", and its model name is `precedent-rules`.
"""

from __future__ import annotations

from pydantic import BaseModel

from dispute_platform.domain.dispute_types import dispute_type_spec
from dispute_platform.domain.facts import DisputeFacts
from dispute_platform.domain.models import Action, SimilarCase
from dispute_platform.domain.rules import RuleOutcome as RuleOutcome
from dispute_platform.domain.rules import outage_credit_share as outage_credit_share

ENGINE_MODEL = "precedent-rules"


def apply_policy_rules(facts: DisputeFacts) -> RuleOutcome:
    """The rule of the dispute's type (domain/dispute_types.py) on its facts; an unknown type
    escalates."""
    spec = dispute_type_spec(facts.dispute_type)
    if spec is None:
        return RuleOutcome(
            action=Action.ESCALATE,
            citations=["POL-001 §2"],
            reason=f"unknown dispute type {facts.dispute_type!r}",
            confidence=0.3,
        )
    return spec.rule(facts)


def _same_kind(a: str, b: Action) -> bool:
    refunds = {Action.FULL_REFUND.value, Action.PARTIAL_REFUND.value}
    return a == b.value or (a in refunds and b.value in refunds)


class PrecedentWeighing(BaseModel):
    confidence: float
    agreeing: list[str]
    disagreeing: list[str]


def weigh_precedent(outcome: RuleOutcome, cases: list[SimilarCase]) -> PrecedentWeighing:
    """Similar past cases of the same dispute type nudge the confidence: agreement raises it a
    little, disagreement lowers it more (a surprising precedent deserves a reviewer's look).
    They never change the action: policies decide, precedent informs."""
    confidence = outcome.confidence
    agreeing: list[str] = []
    disagreeing: list[str] = []
    for case in cases:
        if _same_kind(case.action, outcome.action):
            agreeing.append(case.case_id)
            confidence += 0.03 * case.score
        else:
            disagreeing.append(case.case_id)
            confidence -= 0.06 * case.score
    return PrecedentWeighing(confidence=round(min(0.99, max(0.05, confidence)), 3), agreeing=agreeing, disagreeing=disagreeing)
