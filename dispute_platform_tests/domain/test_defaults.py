"""Every default limit has one home (domain/defaults.py): the environment's settings, the bound
`Limits` and the pure domain models all start from it, and the threshold set in the environment
is the one the prompt names and the guardrails apply."""

from __future__ import annotations

from decimal import Decimal

from dispute_platform.domain import defaults
from dispute_platform.domain.auto_lane import AutoLaneRule
from dispute_platform.domain.caps import CapLimits
from dispute_platform.domain.facts import derive_facts
from dispute_platform.domain.guardrails import GuardrailLimits
from dispute_platform.domain.prompt import PromptBudget, build_prompt
from dispute_platform.resources.limits import Limits
from dispute_platform.settings import Settings
from dispute_platform_tests.domain import factories as f

# Variables that would change a default under test.
_LIMIT_VARIABLES = (
    "MAX_INPUT_TOKENS", "MAX_OUTPUT_TOKENS", "MAX_COST_PER_DISPUTE_USD", "ESCALATION_THRESHOLD_USD",
    "PROMPT_SIMILAR_CASES_TOKENS", "PROMPT_POLICIES_TOKENS", "PROMPT_CHARGES_TOKENS", "AUTO_APPROVE_MAX_USD",
    "AUTO_APPROVE_MIN_CONFIDENCE", "AUTO_APPROVE_SAMPLE_RATE", "DECISION_TICKET_TTL_SECONDS",
)  # fmt: skip


def _settings(monkeypatch, **env: str) -> Settings:
    for name in _LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def test_settings_limits_and_domain_models_share_each_default(monkeypatch):
    from_env = Limits.from_settings(_settings(monkeypatch))
    assert from_env == Limits()
    caps, budget, guardrails = from_env.caps, from_env.proposal_limits().budget, from_env.proposal_limits().guardrails
    assert caps == CapLimits()
    assert (caps.max_input_tokens, caps.max_output_tokens, caps.max_cost_usd) == (
        defaults.MAX_INPUT_TOKENS, defaults.MAX_OUTPUT_TOKENS, defaults.MAX_COST_PER_DISPUTE_USD)  # fmt: skip
    assert budget == PromptBudget()
    assert (budget.similar_cases_tokens, budget.policies_tokens, budget.charges_tokens) == (
        defaults.SIMILAR_CASES_TOKENS, defaults.POLICIES_TOKENS, defaults.CHARGES_TOKENS)  # fmt: skip
    assert guardrails.escalation_threshold == GuardrailLimits().escalation_threshold == defaults.ESCALATION_THRESHOLD_USD
    lane = AutoLaneRule()
    assert (from_env.auto_approve_max_usd, from_env.auto_approve_min_confidence, from_env.auto_approve_sample_rate) == (
        lane.max_usd, lane.min_confidence, lane.sample_rate)  # fmt: skip
    assert from_env.decision_ticket_ttl_seconds == defaults.DECISION_TICKET_TTL_SECONDS


def test_the_threshold_from_the_environment_is_the_one_the_prompt_names(monkeypatch):
    limits = Limits.from_settings(_settings(monkeypatch, ESCALATION_THRESHOLD_USD="250"))
    proposal_limits = limits.proposal_limits()
    assert proposal_limits.guardrails.escalation_threshold == Decimal("250")
    context = f.context()
    prompt = build_prompt(context, derive_facts(context), [], [], proposal_limits.budget,
                          proposal_limits.guardrails.escalation_threshold)  # fmt: skip
    system = prompt.messages[0]["content"]
    assert "anything over 250.00)" in system and "1000.00" not in system
