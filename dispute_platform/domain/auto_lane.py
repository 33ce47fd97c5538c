"""The policy auto-approval lane: which proposals may be executed without a reviewer. Pure rules.

Off unless a deployment sets AUTO_APPROVE_MAX_USD. A proposal qualifies only when every one of
these holds; the verdict names the first that does not:

- the policy rules decided it from records (basis `policy`, not a precedent vote or a model);
- its confidence is calibrated (a fit learnt from reviewers' outcomes was applied) and at or above
  the lane's minimum;
- its action is a refund, a credit or a denial (an escalation always goes to a person);
- its USD value is at or below AUTO_APPROVE_MAX_USD (an unpriced currency never qualifies);
- it carries no flag at all (guardrail corrections, injection suspicion, trimmed evidence ...);
- every cap check passed.

A qualifying decision goes through exactly the reviewers' path (the same rules, the same state
machine, the same guarded execution), recorded as decided by the `auto-policy` lane. A share of
them, chosen by a hash of the case id so that a re-run samples the same disputes, is sampled for
a person to review after the fact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from dispute_platform.domain import defaults
from dispute_platform.domain.caps import CapResult
from dispute_platform.domain.models import Action, ResolutionProposal
from dispute_platform.domain.money import usd_value

LANE = "auto-policy"
LANE_ACTIONS = frozenset({Action.FULL_REFUND, Action.PARTIAL_REFUND, Action.CREDIT, Action.DENY})


@dataclass(frozen=True)
class AutoLaneRule:
    max_usd: Decimal = defaults.AUTO_APPROVE_MAX_USD  # 0: the lane is off
    min_confidence: float = defaults.AUTO_APPROVE_MIN_CONFIDENCE
    sample_rate: float = defaults.AUTO_APPROVE_SAMPLE_RATE

    @property
    def enabled(self) -> bool:
        return self.max_usd > 0


@dataclass(frozen=True)
class AutoVerdict:
    eligible: bool
    reason: str


def auto_verdict(
    proposal: ResolutionProposal, caps: Sequence[CapResult], rule: AutoLaneRule, usd_rates: Mapping[str, Decimal]
) -> AutoVerdict:
    if not rule.enabled:
        return AutoVerdict(False, "the auto-approval lane is off (AUTO_APPROVE_MAX_USD is 0)")
    if proposal.basis != "policy":
        return AutoVerdict(False, f"not decided by the policy rules (basis {proposal.basis})")
    if proposal.calibration is None:
        return AutoVerdict(False, "confidence is not calibrated yet")
    if proposal.confidence < rule.min_confidence:
        return AutoVerdict(False, f"calibrated confidence {proposal.confidence:.2f} is below {rule.min_confidence:.2f}")
    if proposal.action not in LANE_ACTIONS:
        return AutoVerdict(False, f"{proposal.action.value} needs a person")
    value = usd_value(proposal.amount, proposal.currency, usd_rates)
    if value is None:
        return AutoVerdict(False, f"no USD rate for {proposal.currency}")
    if value > rule.max_usd:
        return AutoVerdict(False, f"{value:.2f} USD is above the lane's {rule.max_usd} USD")
    if proposal.flags:
        return AutoVerdict(False, f"flagged: {', '.join(proposal.flags)}")
    failed = [c.name for c in caps if not c.passed]
    if failed or not caps:
        return AutoVerdict(False, f"caps not all passing: {failed or 'not evaluated'}")
    return AutoVerdict(True, f"policy-determined {proposal.action.value} {proposal.amount} {proposal.currency}, "
                             f"calibrated confidence {proposal.confidence:.2f}")  # fmt: skip


def sampled_for_review(case_id: str, sample_rate: float) -> bool:
    """Whether a person reviews this auto-approval after the fact (stable for a case id)."""
    if sample_rate <= 0:
        return False
    digest = int.from_bytes(hashlib.sha256(f"post-review:{case_id}".encode()).digest()[:8], "big")
    return digest / 2**64 < sample_rate
