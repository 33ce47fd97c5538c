"""Retrieve knowledge, build the prompt within budget, ask the provider (or the cache), apply the
guardrails, and evaluate the caps. Saving and notifying are the caller's."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal

from dispute_platform.domain.calibration import ProposalCalibration, calibrate
from dispute_platform.domain.caps import CapResult, ProposalLimits, evaluate_caps
from dispute_platform.domain.facts import DisputeFacts, derive_facts
from dispute_platform.domain.guardrails import apply_guardrails
from dispute_platform.domain.knowledge import POLICY_CATEGORIES, dispute_query_text
from dispute_platform.domain.models import EnrichedContext, PolicyHit, ResolutionProposal, SimilarCase
from dispute_platform.domain.precedent import apply_policy_rules
from dispute_platform.domain.prompt import PROMPT_VERSION, BuiltPrompt, PromptBudget, build_prompt
from dispute_platform.resources.llm import ProposalProvider
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.store import repo
from dispute_platform.store.db import Database


@dataclass(frozen=True)
class ProposalOutcome:
    proposal: ResolutionProposal
    prompt: BuiltPrompt
    facts: DisputeFacts
    policies: list[PolicyHit]
    cases: list[SimilarCase]  # the similar cases the prompt shows
    caps: list[CapResult]
    precedent: list[SimilarCase] = field(default_factory=list)  # every past case retrieved for the vote

    @property
    def within_caps(self) -> bool:
        return all(c.passed for c in self.caps)


def query_text(context: EnrichedContext) -> str:
    case, account = context.crm.case, context.crm.account
    return dispute_query_text(case.dispute_type, case.amount, account.segment.value, case.description)


def retrieve(
    context: EnrichedContext,
    vectors: VectorStoreResource,
    budget: PromptBudget,
    vector: list[float] | None = None,
    facts: DisputeFacts | None = None,
    precedent_cases: int = 0,
) -> tuple[list[PolicyHit], list[SimilarCase]]:
    """Top policies and similar past cases for a dispute: the cases the prompt shows first, then
    the rest of the `precedent_cases` the precedent vote weighs (`similar_cases`).

    Policies: the sections the policy rules point at for this dispute's facts come first (a
    customer's words rarely resemble the remedy clause that decides their case), then the most
    similar sections within the categories that apply to the dispute type. `vector` is the query's
    embedding when the caller embedded a whole batch at once."""
    case = context.crm.case
    text = query_text(context)
    if vector is None:
        vector = vectors.embedder.encode([text])[0]
    policies: list[PolicyHit] = []
    if budget.max_policies:
        facts = facts or derive_facts(context)
        pinned = vectors.policies_by_citation(apply_policy_rules(facts).citations, vector)[: budget.max_policies]
        similar = vectors.query_policies(
            text, k=budget.max_policies + len(pinned), categories=POLICY_CATEGORIES.get(case.dispute_type), vector=vector
        )
        taken = {p.citation for p in pinned}
        policies = pinned + [p for p in similar if p.citation not in taken][: budget.max_policies - len(pinned)]
    cases = similar_cases(vectors, text, vector, case.dispute_type, case.case_id, budget.max_similar_cases, precedent_cases)
    return policies, cases


def similar_cases(
    vectors: VectorStoreResource,
    text: str,
    vector: list[float] | None,
    dispute_type: str,
    exclude_case_id: str,
    shown: int,
    vote: int,
) -> list[SimilarCase]:
    """The cases the prompt shows (the `shown` most similar of the type) first, then the rest of
    the precedent vote's cases. The calibration fit retrieves through here too, so a held-back
    past case is voted on exactly as a new dispute is."""
    if not shown and not vote:
        return []
    first, voters = vectors.query_cases(
        text, shown, vote, dispute_type=dispute_type, exclude_case_id=exclude_case_id, vector=vector
    )
    taken = {c.case_id for c in first}
    return first + [c for c in voters if c.case_id not in taken]


def cache_key(provider: ProposalProvider, prompt: BuiltPrompt) -> str:
    model = getattr(provider, "model", provider.name)
    return hashlib.sha256(f"{provider.name}\x1f{model}\x1f{PROMPT_VERSION}\x1f{prompt.essence}".encode()).hexdigest()


def _ask(
    context: EnrichedContext,
    facts: DisputeFacts,
    prompt: BuiltPrompt,
    policies: list[PolicyHit],
    cases: list[SimilarCase],
    provider: ProposalProvider,
    db: Database,
    calibration: ProposalCalibration | None = None,
) -> ResolutionProposal:
    """The provider's raw proposal, from the cache when an identical prompt was answered before.
    A cache hit costs nothing; failures are never cached."""
    if not provider.cacheable:
        if calibration is None:  # providers written before calibration existed take no such argument
            return provider.propose(context, facts, prompt, policies, cases)
        return provider.propose(context, facts, prompt, policies, cases, calibration=calibration)
    key = cache_key(provider, prompt)
    cached = db.transact(lambda cur: repo.cache_get(cur, key))
    if cached is not None:
        return ResolutionProposal.model_validate(cached).model_copy(
            update={"cache_hit": True, "cost_usd": Decimal("0"), "estimated_cost_usd": Decimal("0"), "latency_ms": 0}
        )
    raw = provider.propose(context, facts, prompt, policies, cases)
    if "model_failure" not in raw.flags:
        reply = raw.model_dump(mode="json")
        db.transact(lambda cur: repo.cache_put(cur, key, context.case_id, context.crm.case.dispute_type, raw.model, reply))
    return raw


def propose(
    context: EnrichedContext,
    vectors: VectorStoreResource,
    provider: ProposalProvider,
    db: Database,
    limits: ProposalLimits,
    vector: list[float] | None = None,
    spent_before: Decimal = Decimal("0"),
    calibration: ProposalCalibration | None = None,
) -> ProposalOutcome:
    """`calibration` (workflow/calibration.py `load_calibration`): the history's base rate for the
    precedent vote and the maps that turn a raw confidence into a calibrated one; without it
    proposals keep their provider's confidence, marked uncalibrated."""
    facts = derive_facts(context)
    policies, cases = retrieve(context, vectors, limits.budget, vector, facts, limits.precedent.cases)
    prompt = build_prompt(context, facts, policies, cases, limits.budget, limits.guardrails.escalation_threshold)
    raw = calibrate(_ask(context, facts, prompt, policies, cases, provider, db, calibration), calibration)
    flags = list(raw.flags)
    if prompt.injection_flags:
        flags += ["injection_suspected", *(f"injection:{name}" for name in prompt.injection_flags)]
    if prompt.trimmed:
        flags.append("trimmed:" + ",".join(prompt.trimmed))
    proposal = apply_guardrails(raw.model_copy(update={"flags": flags}), context, limits.guardrails)
    if proposal.action != raw.action and proposal.calibration is not None:
        # The calibrated figure was for the action the provider chose, not the one the guardrails left.
        proposal = proposal.model_copy(update={"confidence": proposal.raw_confidence, "calibration": None})
    caps = evaluate_caps(proposal, context.verdict.refundable_amount, context.verdict.disputed_amount, limits.caps, spent_before)
    shown = set(prompt.similar_case_ids)
    return ProposalOutcome(
        proposal=proposal,
        prompt=prompt,
        facts=facts,
        policies=policies,
        cases=[c for c in cases if c.case_id in shown],
        caps=caps,
        precedent=cases,
    )
