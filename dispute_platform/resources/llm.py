"""Proposal providers behind one interface, chosen by configuration.

- `PrecedentProposer`: the offline default. The company's policy rules where the records settle a
  dispute, a vote of similar past cases where they cannot; deterministic, $0, and honest about
  being rules and precedent, not a model (every proposal says what determined it: `basis`).
- `OpenAIProposer`: the official client with structured output, timeouts, retries with backoff on
  429/5xx (Retry-After honoured by the client), usage turned into cost with the price table.
  `base_url` points it at any OpenAI-compatible server. Every HTTP attempt is logged, the
  client's own retries included, so that every request the provider may bill is counted: an
  answered one at its usage, one sent but never answered (a timeout) at an estimate of its input
  that the proposal labels as such (`estimated_input_tokens`, `estimated_cost_usd`).

Both return a raw proposal; the guardrails (domain/guardrails.py) are applied by the caller to
whatever comes back. A reply that never validates becomes an `escalate` proposal with the reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from dagster import ConfigurableResource
from pydantic import BaseModel, Field, ValidationError

from dispute_platform.domain import defaults
from dispute_platform.domain.calibration import ProposalCalibration
from dispute_platform.domain.costs import ModelPrice, call_cost, price_for
from dispute_platform.domain.facts import DisputeFacts, cents
from dispute_platform.domain.masking import mask_pii
from dispute_platform.domain.models import (
    MAX_EVENT_AMOUNT,
    Action,
    EnrichedContext,
    PolicyHit,
    ProposalBasis,
    ResolutionProposal,
    SimilarCase,
)
from dispute_platform.domain.precedent import ENGINE_MODEL, RuleOutcome, apply_policy_rules, weigh_precedent
from dispute_platform.domain.precedent_vote import PrecedentSettings, raw_confidence, remedy, tally
from dispute_platform.domain.prompt import PROMPT_VERSION, BuiltPrompt
from dispute_platform.domain.tokens import count_tokens

if TYPE_CHECKING:
    from dispute_platform.settings import Settings


@runtime_checkable
class ProposalProvider(Protocol):
    name: str
    # Whether identical prompts may share a reply (paid, non-deterministic providers).
    cacheable: bool

    def propose(
        self,
        context: EnrichedContext,
        facts: DisputeFacts,
        prompt: BuiltPrompt,
        policies: list[PolicyHit],
        cases: list[SimilarCase],
        calibration: ProposalCalibration | None = None,
    ) -> ResolutionProposal: ...


class PrecedentProposer(ConfigurableResource):
    """Rules first, precedent next; deterministic, $0, and no model.

    Where the policy rules decide from the records, they decide (basis `policy`), and the similar
    cases shown in the prompt only nudge the confidence. Where they cannot (no record to check, a
    general complaint), the retrieved past cases vote (domain/precedent_vote.py, basis
    `precedent`), or, when precedent is thin or split, the dispute goes to a person (basis
    `none`). `calibration` supplies the history's base rate for the vote; the confidence itself is
    calibrated by the caller. `input_tokens` is the size of the prompt a model would have been
    sent (so the budget checks mean the same for every provider); nothing is sent."""

    name: str = "precedent"
    cacheable: bool = False

    def propose(
        self,
        context: EnrichedContext,
        facts: DisputeFacts,
        prompt: BuiltPrompt,
        policies: list[PolicyHit],
        cases: list[SimilarCase],
        calibration: ProposalCalibration | None = None,
    ) -> ResolutionProposal:
        started = time.perf_counter()
        outcome = apply_policy_rules(facts)
        if outcome.decided:
            draft = _by_policy(outcome, facts, prompt, cases)
        else:
            base_rate = calibration.money_back_rate if calibration is not None else None
            draft = _by_precedent(outcome, facts, cases, PrecedentSettings(), base_rate, prompt.injection_flags)
        reply = {
            "action": draft.action.value,
            "amount": str(draft.amount),
            "confidence": draft.confidence,
            "reasoning": draft.reasoning,
            "cited_policies": outcome.citations,
            "similar_cases": draft.similar_cases,
        }
        return ResolutionProposal(
            action=draft.action,
            amount=draft.amount,
            currency=facts.currency,
            confidence=draft.confidence,
            basis=draft.basis,
            raw_confidence=draft.confidence,
            reasoning=draft.reasoning,
            cited_policies=outcome.citations,
            similar_cases=draft.similar_cases,
            model=ENGINE_MODEL,
            provider=self.name,
            prompt_version=PROMPT_VERSION,
            input_tokens=prompt.input_tokens,
            output_tokens=count_tokens(json.dumps(reply)),
            cost_usd=Decimal("0"),
            latency_ms=int((time.perf_counter() - started) * 1000),
            requests=0,
        )


class _Draft(BaseModel):
    action: Action
    amount: Decimal
    confidence: float
    basis: ProposalBasis
    reasoning: str
    similar_cases: list[str]


def _by_policy(outcome: RuleOutcome, facts: DisputeFacts, prompt: BuiltPrompt, cases: list[SimilarCase]) -> _Draft:
    """The rules decided. The past cases the prompt shows, of the same type, nudge the confidence."""
    shown = set(prompt.similar_case_ids)
    same_type = [c for c in cases if c.dispute_type == facts.dispute_type and c.case_id in shown]
    weighing = weigh_precedent(outcome, same_type)
    precedent = ""
    if same_type:
        precedent = (
            f" Precedent: {len(weighing.agreeing)} of {len(same_type)} similar past cases agree"
            + (f" ({', '.join(weighing.agreeing)})" if weighing.agreeing else "")
            + (f"; differing: {', '.join(weighing.disagreeing)}" if weighing.disagreeing else "")
            + "."
        )
    return _Draft(
        action=outcome.action,
        amount=outcome.amount,
        confidence=weighing.confidence,
        basis="policy",
        reasoning=f"Rules engine (not a model): {outcome.reason} ({', '.join(outcome.citations)}).{precedent}",
        similar_cases=[c.case_id for c in same_type],
    )


def _by_precedent(
    outcome: RuleOutcome,
    facts: DisputeFacts,
    cases: list[SimilarCase],
    settings: PrecedentSettings,
    base_rate: float | None,
    injection_flags: list[str],
) -> _Draft:
    """The rules could not decide: the similar past cases vote. Not when the dispute's text
    looks like an injection attempt: the cases were found through that text, so the one who
    wrote it chose the precedent (the rules read records, which the text cannot change)."""
    undecided = f"Rules engine (not a model): the policies do not settle this from the records: {outcome.reason} ({', '.join(outcome.citations)})."
    if injection_flags:
        return _Draft(
            action=Action.ESCALATE,
            amount=outcome.amount,
            confidence=outcome.confidence,
            basis="none",
            reasoning=f"{undecided} The description looks like an injection attempt ({', '.join(injection_flags)}), "
            "and the similar cases were found through it, so precedent is not followed: a person decides.",
            similar_cases=[],
        )
    vote = tally(cases, settings, base_rate)
    fix = remedy(vote, cases, facts)
    if fix.action == Action.ESCALATE:
        return _Draft(
            action=Action.ESCALATE,
            amount=outcome.amount,
            confidence=outcome.confidence,
            basis="none",
            reasoning=f"{undecided} Precedent does not settle it either ({vote.why}), so a person decides.",
            similar_cases=vote.followed[: settings.cite],
        )
    followed = vote.followed[: settings.cite]
    return _Draft(
        action=fix.action,
        amount=fix.amount,
        confidence=raw_confidence(vote),
        basis="precedent",
        reasoning=f"{undecided} Decided by precedent: {vote.why}; following {', '.join(followed)}"
        + (f" (against: {', '.join(vote.against[:3])})" if vote.against else "")
        + f"; amount: {fix.how}.",
        similar_cases=followed,
    )


class LLMReply(BaseModel):
    """The JSON a model must answer with (strict structured output)."""

    action: Literal["full_refund", "partial_refund", "credit", "deny", "escalate"]
    # Bounded like an event's amount: a larger figure is no answer, and would not fit `Money`.
    amount: float = Field(ge=0, le=float(MAX_EVENT_AMOUNT))
    confidence: float = Field(ge=0, le=1)
    reasoning: str = Field(max_length=4000)
    cited_policies: list[str]
    similar_cases: list[str]


REPLY_SCHEMA: dict[str, Any] = {
    "name": "resolution_proposal",
    "strict": True,
    "schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["action", "amount", "confidence", "reasoning", "cited_policies", "similar_cases"],
        "properties": {
            "action": {"type": "string", "enum": [a.value for a in Action]},
            "amount": {"type": "number"},
            "confidence": {"type": "number"},
            "reasoning": {"type": "string"},
            "cited_policies": {"type": "array", "items": {"type": "string"}},
            "similar_cases": {"type": "array", "items": {"type": "string"}},
        },
    },
}


class OpenAIProposer(ConfigurableResource):
    api_key: str
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    timeout_seconds: float = 30.0
    max_retries: int = Field(default=3, ge=0, description="Transport retries (429, 5xx, timeouts), with backoff.")
    invalid_reply_retries: int = Field(default=1, ge=0, description="Re-asks after a reply that is not valid JSON.")
    max_output_tokens: int = defaults.MAX_OUTPUT_TOKENS
    prices_json: str | None = Field(default=None, description="Price table override (JSON), see LLM_PRICES.")
    name: str = "openai"
    cacheable: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, api_key: Any) -> OpenAIProposer:
        """The provider as the platform's settings configure it (`api_key`: a string or an EnvVar)."""
        return cls(
            api_key=api_key,
            model=settings.openai_model,
            base_url=settings.openai_base_url,
            timeout_seconds=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,
            max_output_tokens=settings.max_output_tokens,
            prices_json=settings.llm_prices,
        )

    def _price(self) -> ModelPrice:
        table = None
        if self.prices_json:
            table = {k: ModelPrice(**v) for k, v in json.loads(self.prices_json).items()}
        return price_for(self.model, table)

    def _client(self, attempts: list[int | str]) -> Any:
        """The official client, logging every HTTP attempt (its own retries included) in `attempts`."""
        from openai import DefaultHttpxClient, OpenAI

        class AttemptLoggingClient(DefaultHttpxClient):  # type: ignore[misc, valid-type]
            def send(self, request: Any, **kwargs: Any) -> Any:
                try:
                    response = super().send(request, **kwargs)
                except Exception as exc:
                    # By class name: the client is built on httpx or its fork httpx2, same names.
                    attempts.append(UNANSWERED if type(exc).__name__ in _SENT_BUT_UNANSWERED else UNDELIVERED)
                    raise
                attempts.append(response.status_code)
                return response

        return OpenAI(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=self.timeout_seconds,
            max_retries=self.max_retries,
            http_client=AttemptLoggingClient(timeout=self.timeout_seconds),
        )

    def propose(
        self,
        context: EnrichedContext,
        facts: DisputeFacts,
        prompt: BuiltPrompt,
        policies: list[PolicyHit],
        cases: list[SimilarCase],
        calibration: ProposalCalibration | None = None,  # the caller calibrates a model's confidence
    ) -> ResolutionProposal:
        import openai

        price = self._price()
        attempts: list[int | str] = []
        client = self._client(attempts)
        started = time.perf_counter()
        input_tokens = output_tokens = cached_tokens = with_usage = 0
        request_input: int | None = None  # what the provider counted for one request of this prompt
        failure = ""
        reply: LLMReply | None = None
        try:
            for _ in range(self.invalid_reply_retries + 1):
                try:
                    response = client.chat.completions.create(
                        model=self.model,
                        messages=prompt.messages,
                        max_tokens=self.max_output_tokens,
                        temperature=0,
                        response_format={"type": "json_schema", "json_schema": REPLY_SCHEMA},
                    )
                except openai.APIStatusError as exc:
                    # The client retries 408, 409, 429 and 5xx; anything else (401, 400 ...) failed at once.
                    retried = exc.status_code in (408, 409, 429) or exc.status_code >= 500
                    after = f" after {self.max_retries} retries" if retried else ""
                    failure = f"model API answered {exc.status_code}{after}: {exc.message}"
                    break
                except openai.APITimeoutError:
                    failure = f"model API did not answer within {self.timeout_seconds:g} s ({len(attempts)} attempts)"
                    break
                except openai.APIConnectionError as exc:
                    unanswered = attempts.count(UNANSWERED)
                    failure = (
                        f"model API dropped {unanswered} of {len(attempts)} requests unanswered"
                        if unanswered
                        else f"model API unreachable after {self.max_retries} retries: {exc.__class__.__name__}"
                    )
                    break
                usage = response.usage
                if usage is not None:
                    with_usage += 1
                    request_input = usage.prompt_tokens or 0
                    input_tokens += usage.prompt_tokens or 0
                    output_tokens += usage.completion_tokens or 0
                    details = getattr(usage, "prompt_tokens_details", None)
                    cached_tokens += (getattr(details, "cached_tokens", 0) or 0) if details else 0
                message = response.choices[0].message if response.choices else None
                if message is None:
                    failure = "model returned no choices"
                    continue
                if getattr(message, "refusal", None):
                    failure = f"model refused: {mask_pii(str(message.refusal))[:200]}"
                    break
                try:
                    reply = LLMReply.model_validate_json(message.content or "")
                    break
                except ValidationError as exc:
                    failure = f"reply is not valid JSON for the schema: {exc.errors()[0]['msg']}"
        finally:
            client.close()  # its HTTP client is ours: no pooled sockets left behind per dispute
        latency_ms = int((time.perf_counter() - started) * 1000)
        bill = billable(attempts, with_usage, request_input if request_input is not None else prompt.input_tokens)
        cost = call_cost(price, input_tokens, output_tokens, cached_tokens)
        estimated_cost = call_cost(price, bill.estimated_input_tokens, 0) if bill.estimated_input_tokens else Decimal("0")
        if estimated_cost and failure:
            failure += (
                f"; {bill.estimated_requests} request(s) sent without an answer may still be billed "
                f"(estimated ${estimated_cost:.6f}: their input, our count)"
            )
        common = dict(
            model=self.model,
            provider=self.name,
            prompt_version=PROMPT_VERSION,
            # Nothing billed: the prompt's own size, so the input cap means the same for every provider.
            input_tokens=(input_tokens + bill.estimated_input_tokens) if bill.requests else prompt.input_tokens,
            requests=bill.requests,
            output_tokens=output_tokens,
            cost_usd=cost + estimated_cost,
            estimated_input_tokens=bill.estimated_input_tokens,
            estimated_cost_usd=estimated_cost,
            latency_ms=latency_ms,
            currency=facts.currency,
        )
        if reply is None:
            return ResolutionProposal(
                action=Action.ESCALATE,
                confidence=0.0,
                basis="none",
                reasoning=f"No usable model reply, so a person decides: {failure}.",
                flags=["model_failure"],
                **common,
            )
        return _from_reply(reply, prompt, common)


# What became of one HTTP attempt: its status code, or one of these.
UNANSWERED = "sent, no answer"  # a timeout or a dropped connection after sending: the provider may bill it
UNDELIVERED = "not delivered"  # no connection, or the request could not be written: nothing to bill
_SENT_BUT_UNANSWERED = {"ReadTimeout", "ReadError", "RemoteProtocolError"}


@dataclass(frozen=True)
class Billable:
    requests: int  # requests the provider may bill
    estimated_requests: int  # of which the usage is unknown
    estimated_input_tokens: int


def billable(attempts: list[int | str], with_usage: int, request_input_tokens: int) -> Billable:
    """Which HTTP attempts a provider may bill: every answered one (2xx; errors are not billed)
    and every one sent but never answered. Those whose usage we never saw (no answer, or an
    answer without usage) are estimated at `request_input_tokens` each: the provider's count
    for the same prompt when an answer carried it, else our own count."""
    answered = sum(1 for a in attempts if isinstance(a, int) and 200 <= a < 300)
    unknown = max(0, answered - with_usage) + attempts.count(UNANSWERED)
    return Billable(requests=answered + attempts.count(UNANSWERED), estimated_requests=unknown,
                    estimated_input_tokens=unknown * request_input_tokens)  # fmt: skip


def _from_reply(reply: LLMReply, prompt: BuiltPrompt, common: dict[str, Any]) -> ResolutionProposal:
    """Keep only citations and cases the prompt actually contained: a model may invent ids."""
    flags = []
    known_policies = set(prompt.cited_policy_ids)
    cited = [c for c in reply.cited_policies if c in known_policies]
    if len(cited) != len(reply.cited_policies):
        flags.append("unknown_citation_dropped")
    known_cases = set(prompt.similar_case_ids)
    cases = [c for c in reply.similar_cases if c in known_cases]
    if len(cases) != len(reply.similar_cases):
        flags.append("unknown_case_dropped")
    try:
        amount = cents(Decimal(str(reply.amount)))
    except InvalidOperation:
        amount, flags = Decimal("0"), [*flags, "unreadable_amount"]
    return ResolutionProposal(
        action=Action(reply.action),
        amount=amount,
        confidence=reply.confidence,
        basis="model",
        raw_confidence=reply.confidence,
        reasoning=mask_pii(reply.reasoning)[:2000],
        cited_policies=cited,
        similar_cases=cases,
        flags=flags,
        **common,
    )
