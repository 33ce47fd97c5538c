"""Retrieve knowledge, build the prompt within budget, ask the provider (or the cache), apply the
guardrails, and evaluate the caps. Saving and notifying are the caller's."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from dataclasses import dataclass, field

from dispute_platform.domain.caps import CapLimits, CapResult, evaluate_caps
from dispute_platform.domain.facts import DisputeFacts, derive_facts
from dispute_platform.domain.guardrails import GuardrailLimits, apply_guardrails
from dispute_platform.domain.knowledge import POLICY_CATEGORIES, dispute_query_text
from dispute_platform.domain.models import EnrichedContext, PolicyHit, ResolutionProposal, SimilarCase
from dispute_platform.domain.precedent import apply_policy_rules
from dispute_platform.domain.prompt import PROMPT_VERSION, BuiltPrompt, PromptBudget, build_prompt
from dispute_platform.resources.llm import ProposalProvider
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.store import repo
from dispute_platform.store.db import Database


@dataclass(frozen=True)
class ProposalLimits:
    budget: PromptBudget = field(default_factory=PromptBudget)
    caps: CapLimits = field(default_factory=CapLimits)
    guardrails: GuardrailLimits = field(default_factory=GuardrailLimits)


@dataclass(frozen=True)
class ProposalOutcome:
    proposal: ResolutionProposal
    prompt: BuiltPrompt
    facts: DisputeFacts
    policies: list[PolicyHit]
    cases: list[SimilarCase]
    caps: list[CapResult]

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
) -> tuple[list[PolicyHit], list[SimilarCase]]:
    """Top policies and similar past cases for a dispute.

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
    cases = (
        vectors.query_similar_cases(
            text, k=budget.max_similar_cases, dispute_type=case.dispute_type, exclude_case_id=case.case_id, vector=vector
        )
        if budget.max_similar_cases
        else []
    )
    return policies, cases


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
) -> ResolutionProposal:
    """The provider's raw proposal, from the cache when an identical prompt was answered before.
    A cache hit costs nothing; failures are never cached."""
    if not provider.cacheable:
        return provider.propose(context, facts, prompt, policies, cases)
    key = cache_key(provider, prompt)
    cached = db.transact(lambda cur: repo.cache_get(cur, key))
    if cached is not None:
        return ResolutionProposal.model_validate(cached).model_copy(
            update={"cache_hit": True, "cost_usd": 0, "estimated_cost_usd": 0, "latency_ms": 0}
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
) -> ProposalOutcome:
    facts = derive_facts(context)
    policies, cases = retrieve(context, vectors, limits.budget, vector, facts)
    prompt = build_prompt(context, facts, policies, cases, limits.budget)
    raw = _ask(context, facts, prompt, policies, cases, provider, db)
    flags = list(raw.flags)
    if prompt.injection_flags:
        flags += ["injection_suspected", *(f"injection:{name}" for name in prompt.injection_flags)]
    if prompt.trimmed:
        flags.append("trimmed:" + ",".join(prompt.trimmed))
    proposal = apply_guardrails(raw.model_copy(update={"flags": flags}), context, limits.guardrails)
    caps = evaluate_caps(
        proposal, context.verdict.refundable_amount, context.verdict.disputed_amount, limits.caps, spent_before
    )
    return ProposalOutcome(proposal=proposal, prompt=prompt, facts=facts, policies=policies, cases=cases, caps=caps)
