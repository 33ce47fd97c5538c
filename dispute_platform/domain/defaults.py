"""The one home of every default limit: caps, budgets, thresholds, the auto-approval lane and the
decision ticket's lifetime.

`Settings` (the environment), `Limits` (what the definitions bind) and the pure domain models
(`CapLimits`, `PromptBudget`, `GuardrailLimits`, `AutoLaneRule`) all take their defaults from
here, so a default is changed in one place. The system prompt names the escalation threshold it
is given (`domain/prompt.py`), never a figure of its own.
"""

from __future__ import annotations

from decimal import Decimal

# Caps per dispute (o200k_base tokens; USD).
MAX_INPUT_TOKENS = 2075
MAX_OUTPUT_TOKENS = 1000
MAX_COST_PER_DISPUTE_USD = Decimal("0.001")

# Token budgets of the prompt's sections.
SIMILAR_CASES_TOKENS = 300
POLICIES_TOKENS = 450
CHARGES_TOKENS = 125

# POL-001 §4: above this (in USD) a proposal is escalated and a decision needs two reviewers.
ESCALATION_THRESHOLD_USD = Decimal("1000.00")

# The policy auto-approval lane (0: off).
AUTO_APPROVE_MAX_USD = Decimal("0")
AUTO_APPROVE_MIN_CONFIDENCE = 0.9
AUTO_APPROVE_SAMPLE_RATE = 0.1

# How long a launchpad decision ticket stays valid (seconds).
DECISION_TICKET_TTL_SECONDS = 900
