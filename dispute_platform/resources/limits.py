"""The per-dispute caps and budgets as one resource, so the asset, its checks and the review
path read the same numbers (and the UI shows them)."""

from __future__ import annotations

from decimal import Decimal

from dagster import ConfigurableResource
from pydantic import Field

from dispute_platform.domain.caps import CapLimits
from dispute_platform.domain.guardrails import GuardrailLimits
from dispute_platform.domain.prompt import PromptBudget
from dispute_platform.workflow.propose import ProposalLimits


class LimitsResource(ConfigurableResource):
    max_input_tokens: int = Field(default=2075, ge=200)
    max_output_tokens: int = Field(default=1000, ge=16)
    max_cost_usd: str = Field(default="0.001", description="Decimal as text: no float rounding of money.")
    escalation_threshold_usd: str = "1000.00"
    similar_cases_tokens: int = 300
    policies_tokens: int = 450
    charges_tokens: int = 125
    description_tokens: int | None = None

    @property
    def escalation_threshold(self) -> Decimal:
        return Decimal(self.escalation_threshold_usd)

    def proposal_limits(self) -> ProposalLimits:
        return ProposalLimits(
            budget=PromptBudget(
                max_input_tokens=self.max_input_tokens,
                max_output_tokens=self.max_output_tokens,
                similar_cases_tokens=self.similar_cases_tokens,
                policies_tokens=self.policies_tokens,
                charges_tokens=self.charges_tokens,
                description_tokens=self.description_tokens,
            ),
            caps=CapLimits(
                max_input_tokens=self.max_input_tokens,
                max_output_tokens=self.max_output_tokens,
                max_cost_usd=Decimal(self.max_cost_usd),
            ),
            guardrails=GuardrailLimits(escalation_threshold=self.escalation_threshold),
        )
