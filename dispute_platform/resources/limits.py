"""The per-dispute caps, budgets and decision thresholds as one object, so the asset, its checks,
the review path and the endpoint read the same numbers.

It is deliberately NOT a ConfigurableResource: Dagster lets run config (the launchpad) override a
configurable resource's fields, and a limit that a launchpad user can raise is no limit. Limits
are deployment settings (the environment), bound to the definitions as a plain object.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from dispute_platform.domain import defaults
from dispute_platform.domain.caps import CapLimits, ProposalLimits
from dispute_platform.domain.guardrails import GuardrailLimits
from dispute_platform.domain.money import DEFAULT_USD_RATES
from dispute_platform.domain.prompt import PromptBudget

if TYPE_CHECKING:
    from dispute_platform.settings import Settings


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_input_tokens: int = Field(default=defaults.MAX_INPUT_TOKENS, ge=200)
    max_output_tokens: int = Field(default=defaults.MAX_OUTPUT_TOKENS, ge=16)
    max_cost_usd: Decimal = defaults.MAX_COST_PER_DISPUTE_USD
    escalation_threshold_usd: Decimal = defaults.ESCALATION_THRESHOLD_USD
    usd_rates: dict[str, Decimal] = Field(default_factory=lambda: dict(DEFAULT_USD_RATES))
    similar_cases_tokens: int = defaults.SIMILAR_CASES_TOKENS
    policies_tokens: int = defaults.POLICIES_TOKENS
    charges_tokens: int = defaults.CHARGES_TOKENS
    description_tokens: int | None = None
    decision_ticket_ttl_seconds: int = Field(default=defaults.DECISION_TICKET_TTL_SECONDS, ge=30)
    auto_approve_max_usd: Decimal = defaults.AUTO_APPROVE_MAX_USD
    auto_approve_min_confidence: float = Field(default=defaults.AUTO_APPROVE_MIN_CONFIDENCE, ge=0, le=1)
    auto_approve_sample_rate: float = Field(default=defaults.AUTO_APPROVE_SAMPLE_RATE, ge=0, le=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_input_tokens=settings.max_input_tokens,
            max_output_tokens=settings.max_output_tokens,
            max_cost_usd=settings.max_cost_per_dispute_usd,
            escalation_threshold_usd=settings.escalation_threshold_usd,
            usd_rates=settings.usd_rates,
            similar_cases_tokens=settings.prompt_similar_cases_tokens,
            policies_tokens=settings.prompt_policies_tokens,
            charges_tokens=settings.prompt_charges_tokens,
            description_tokens=settings.prompt_description_tokens,
            decision_ticket_ttl_seconds=settings.decision_ticket_ttl_seconds,
            auto_approve_max_usd=settings.auto_approve_max_usd,
            auto_approve_min_confidence=settings.auto_approve_min_confidence,
            auto_approve_sample_rate=settings.auto_approve_sample_rate,
        )

    @property
    def escalation_threshold(self) -> Decimal:
        return self.escalation_threshold_usd

    @property
    def caps(self) -> CapLimits:
        return CapLimits(
            max_input_tokens=self.max_input_tokens, max_output_tokens=self.max_output_tokens, max_cost_usd=self.max_cost_usd
        )

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
            caps=self.caps,
            guardrails=GuardrailLimits(escalation_threshold=self.escalation_threshold_usd, usd_rates=self.usd_rates),
        )
