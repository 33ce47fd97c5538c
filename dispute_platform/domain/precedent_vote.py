"""Precedent where the rules cannot decide: a similarity-weighted vote of past outcomes.

The policy rules decide whatever the records settle (domain/precedent.py). Some disputes they
cannot settle: a general complaint, a charge with no fulfilment record or no contracted price to
compare with. For those, what happened to the most similar past disputes is the best evidence
there is, so the engine follows it, and says which cases it followed.

How the vote works (pure, deterministic):

- Every retrieved past case at or above `min_similarity` votes with its similarity as weight:
  refunds and credits for *money back*, a deny for *no money*; an escalated past case for
  *a person decides* (its outcome was never recorded as a decision).
- Money back is rare in most histories (14% of the CFPB sample), so a raw majority would
  almost never propose it. The two sides are therefore weighed against their base rates in the
  whole history: `share` is the money-back side's weight divided by its base rate, over the sum
  of both sides so divided. 0.5 means "as often as usual"; above it, these neighbours got money
  back more often than disputes in general. This is the vote that maximises balanced accuracy
  when the base rate is right; without a fitted base rate both sides count alike.
- It escalates when precedent is *thin* (fewer than `min_cases` voting cases), *split* (share
  within `split_margin` of 0.5), or when escalated cases outweigh decided ones.

What the share means as a probability is learnt from history (domain/calibration.py): the
proposal's confidence is calibrated there, not here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, Literal, TypedDict

from pydantic import BaseModel, Field

from dispute_platform.domain.facts import DisputeFacts, cents
from dispute_platform.domain.models import Action, SimilarCase

MONEY_BACK: Final = "money_back"
NO_MONEY: Final = "no_money"
ESCALATE: Final = "escalate"
Side = Literal["money_back", "no_money", "escalate"]
_MONEY_ACTIONS = {Action.FULL_REFUND.value, Action.PARTIAL_REFUND.value, Action.CREDIT.value}
# A base rate this close to 0 or 1 would let a single vote decide everything.
_RATE_FLOOR = 0.01


class PrecedentSettings(BaseModel):
    """How the vote is taken. The defaults are reasoned, not fitted to one data set: 30
    neighbours keep the vote stable on a few hundred past cases and fit Chroma's unfiltered
    over-fetch; 5 voters is the least that is more than an anecdote; a 5-point margin either
    side of "as often as usual" is what "split" means."""

    cases: int = Field(default=30, ge=1, description="Past cases retrieved for the vote (the prompt shows the first few).")
    min_cases: int = Field(default=5, ge=1, description="Fewer voting past cases than this: precedent is thin.")
    min_similarity: float = Field(default=0.2, ge=0, le=1, description="Less similar past cases do not vote.")
    split_margin: float = Field(default=0.05, ge=0, le=0.5, description="A share this close to 0.5 is a split vote.")
    cite: int = Field(default=5, ge=1, description="Followed cases named in a proposal.")


class Tally(BaseModel):
    """The vote, before it is turned into an action."""

    side: Side
    share: float | None = Field(default=None, ge=0, le=1, description="Balanced money-back share; None when thin.")
    money_back_weight: float = 0.0
    no_money_weight: float = 0.0
    escalate_weight: float = 0.0
    voters: int = 0
    followed: list[str] = Field(default_factory=list)  # most similar first
    against: list[str] = Field(default_factory=list)
    why: str


class _TallyWeights(TypedDict):
    """The fields every `Tally` of one vote shares, whichever side it takes."""

    money_back_weight: float
    no_money_weight: float
    escalate_weight: float
    voters: int


def outcome_side(action: str) -> Side | None:
    """What a past case's action amounts to in the vote (None: it does not vote)."""
    if action in _MONEY_ACTIONS:
        return MONEY_BACK
    if action == Action.DENY.value:
        return NO_MONEY
    if action == Action.ESCALATE.value:
        return ESCALATE
    return None


def balanced_share(money_back_weight: float, no_money_weight: float, base_rate: float | None) -> float:
    """The money-back side's weight against its base rate (see the module docstring)."""
    rate = 0.5 if base_rate is None else min(1 - _RATE_FLOOR, max(_RATE_FLOOR, base_rate))
    money, none = money_back_weight / rate, no_money_weight / (1 - rate)
    return money / (money + none) if money + none > 0 else 0.5


def tally(cases: list[SimilarCase], settings: PrecedentSettings, base_rate: float | None) -> Tally:
    """The similarity-weighted, base-rate-balanced vote of `cases`."""
    weights = {MONEY_BACK: 0.0, NO_MONEY: 0.0, ESCALATE: 0.0}
    sides: dict[str, list[tuple[float, str]]] = {MONEY_BACK: [], NO_MONEY: [], ESCALATE: []}
    for case in cases:
        side = outcome_side(case.action)
        if side is None or case.score < settings.min_similarity or case.score <= 0:
            continue
        weights[side] += case.score
        sides[side].append((case.score, case.case_id))
    for entries in sides.values():
        entries.sort(key=lambda e: (-e[0], e[1]))
    voters = sum(len(v) for v in sides.values())
    common = _TallyWeights(
        money_back_weight=round(weights[MONEY_BACK], 6),
        no_money_weight=round(weights[NO_MONEY], 6),
        escalate_weight=round(weights[ESCALATE], 6),
        voters=voters,
    )
    decided = len(sides[MONEY_BACK]) + len(sides[NO_MONEY])
    if decided < settings.min_cases:
        return Tally(side=ESCALATE, why=f"thin precedent: {decided} similar past case(s) with an outcome, "
                     f"fewer than {settings.min_cases}", **common)  # fmt: skip
    if weights[ESCALATE] > weights[MONEY_BACK] + weights[NO_MONEY]:
        return Tally(side=ESCALATE, followed=[c for _, c in sides[ESCALATE]], why=f"most similar past cases "
                     f"({len(sides[ESCALATE])} of {voters}) were escalated to a person", **common)  # fmt: skip
    share = round(balanced_share(weights[MONEY_BACK], weights[NO_MONEY], base_rate), 6)
    if abs(share - 0.5) < settings.split_margin:
        return Tally(side=ESCALATE, share=share, why=f"split precedent: balanced money-back share {share:.2f}, "
                     f"within {settings.split_margin:.2f} of even", **common)  # fmt: skip
    side = MONEY_BACK if share > 0.5 else NO_MONEY
    other = NO_MONEY if side == MONEY_BACK else MONEY_BACK
    return Tally(
        side=side,
        share=share,
        followed=[c for _, c in sides[side]],
        against=[c for _, c in sides[other]],
        why=f"{len(sides[MONEY_BACK])} of {decided} similar past cases got money back "
        f"(balanced share {share:.2f}" + (f" against a base rate of {base_rate:.2f})" if base_rate is not None else ")"),
        **common,
    )


def raw_confidence(vote: Tally) -> float:
    """The share of the side the vote chose (uncalibrated; escalations have none)."""
    if vote.share is None or vote.side == ESCALATE:
        return 0.5
    return round(vote.share if vote.side == MONEY_BACK else 1 - vote.share, 6)


class PrecedentRemedy(BaseModel):
    action: Action
    amount: Decimal = Decimal("0")
    how: str


def _weighted_median(values: list[tuple[Decimal, float]]) -> Decimal:
    ordered = sorted(values)
    half = sum(w for _, w in ordered) / 2
    running = 0.0
    for value, weight in ordered:
        running += weight
        if running >= half:
            return value
    return ordered[-1][0]


def remedy(vote: Tally, cases: list[SimilarCase], facts: DisputeFacts) -> PrecedentRemedy:
    """What the followed cases did, applied to this dispute.

    Money back: a credit when credits outweigh refunds among the followed cases, else a refund;
    the amount is the disputed amount times the (similarity-weighted median) share of their
    disputed amounts the followed cases got back, or the whole disputed amount when none of them
    recorded one (CFPB outcomes never say how much). The guardrails still cap it at what is
    refundable and escalate it above the approval threshold."""
    if vote.side == NO_MONEY:
        return PrecedentRemedy(action=Action.DENY, how="followed the denials")
    if vote.side != MONEY_BACK:
        return PrecedentRemedy(action=Action.ESCALATE, how="no decision")
    followed = set(vote.followed)
    money_cases = [c for c in cases if c.case_id in followed]
    credit_weight = sum(c.score for c in money_cases if c.action == Action.CREDIT.value)
    refund_weight = sum(c.score for c in money_cases if c.action != Action.CREDIT.value)
    ratios = [
        (min(Decimal(1), c.resolved_amount / c.amount), c.score)
        for c in money_cases
        if c.amount is not None and c.amount > 0 and c.resolved_amount is not None and c.resolved_amount > 0
    ]
    ratio = _weighted_median(ratios) if ratios else Decimal(1)
    amount = cents(facts.disputed_amount * ratio)
    how = (f"{ratio:.0%} of the disputed amount, as the followed cases got back" if ratios
           else "the disputed amount (the followed cases recorded no amount)")  # fmt: skip
    if credit_weight > refund_weight:
        return PrecedentRemedy(action=Action.CREDIT, amount=amount, how=how)
    if facts.refundable is not None:
        amount = min(amount, cents(facts.refundable))
    full = facts.charge_amount is not None and amount >= facts.charge_amount
    return PrecedentRemedy(action=Action.FULL_REFUND if full else Action.PARTIAL_REFUND, amount=amount, how=how)
