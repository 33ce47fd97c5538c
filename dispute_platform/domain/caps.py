"""The per-dispute caps, as one pure evaluation shared by `ai_proposal` (which refuses to put an
over-cap proposal up for review) and the blocking asset checks (which say so in the UI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from pydantic import BaseModel, Field

from dispute_platform.domain import defaults
from dispute_platform.domain.guardrails import GuardrailLimits
from dispute_platform.domain.models import ResolutionProposal
from dispute_platform.domain.precedent_vote import PrecedentSettings
from dispute_platform.domain.prompt import PromptBudget


class CapLimits(BaseModel):
    max_input_tokens: int = Field(default=defaults.MAX_INPUT_TOKENS, ge=1)
    max_output_tokens: int = Field(default=defaults.MAX_OUTPUT_TOKENS, ge=1)
    max_cost_usd: Decimal = Field(default=defaults.MAX_COST_PER_DISPUTE_USD, ge=0)


@dataclass(frozen=True)
class ProposalLimits:
    """Everything that bounds one proposal: the prompt's budget, the caps, the guardrails."""

    budget: PromptBudget = field(default_factory=PromptBudget)
    caps: CapLimits = field(default_factory=CapLimits)
    guardrails: GuardrailLimits = field(default_factory=GuardrailLimits)
    precedent: PrecedentSettings = field(default_factory=PrecedentSettings)


class CapResult(BaseModel):
    name: str
    passed: bool
    figure: Decimal
    cap: Decimal
    description: str


CAP_NAMES = ("input_tokens_within_cap", "output_tokens_within_cap", "cost_within_cap", "amount_within_refundable")


def evaluate_caps(
    proposal: ResolutionProposal,
    refundable: Decimal | None,
    disputed: Decimal,
    limits: CapLimits,
    spent_before: Decimal = Decimal("0"),
) -> list[CapResult]:
    """One result per cap, in CAP_NAMES order. The cost cap is per dispute: what earlier
    proposals for the same dispute cost (`spent_before`) counts too."""
    # A refund is bounded by the charge; a credit by the disputed amount (it touches no charge).
    # The input cap is per request: a re-ask after an invalid reply sends the same prompt again
    # (both are billed, and the cost cap counts both).
    per_request_input = Decimal(-(-proposal.input_tokens // max(1, proposal.requests)))
    amount_cap = disputed
    if proposal.action.is_refund:
        amount_cap = min(disputed, refundable if refundable is not None else Decimal("0"))
    return [
        CapResult(
            name="input_tokens_within_cap",
            passed=per_request_input <= limits.max_input_tokens,
            figure=per_request_input,
            cap=Decimal(limits.max_input_tokens),
            description="prompt tokens (o200k_base) per model request",
        ),
        CapResult(
            name="output_tokens_within_cap",
            passed=proposal.output_tokens <= limits.max_output_tokens,
            figure=Decimal(proposal.output_tokens),
            cap=Decimal(limits.max_output_tokens),
            description="completion tokens returned by the model",
        ),
        CapResult(
            name="cost_within_cap",
            passed=spent_before + proposal.cost_usd <= limits.max_cost_usd,
            figure=spent_before + proposal.cost_usd,
            cap=limits.max_cost_usd,
            description="LLM cost of this dispute in USD",
        ),
        CapResult(
            name="amount_within_refundable",
            passed=not proposal.action.moves_money or proposal.amount <= amount_cap,
            figure=proposal.amount,
            cap=amount_cap,
            description="proposed amount against what is still refundable (credits: the disputed amount)",
        ),
    ]
