"""OpenAIProposer against a local server that speaks the chat-completions protocol: replies,
usage and cost, retries on 429/5xx, timeouts, malformed JSON, refusals and the request itself."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from dispute_platform.domain.caps import CapLimits, evaluate_caps
from dispute_platform.domain.facts import derive_facts
from dispute_platform.domain.models import Action
from dispute_platform.domain.prompt import PROMPT_VERSION, build_prompt
from dispute_platform.resources.llm import REPLY_SCHEMA, OpenAIProposer
from dispute_platform_tests.domain import factories as f
from dispute_platform_tests.fake_http import FakeServer, Reply, Request

D = Decimal


@dataclass
class FakeOpenAI:
    """Scripted replies, one per request (the last one repeats), and every request it saw."""

    port: int
    replies: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        self.replies = list(replies)

    def next_reply(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self.lock:
            self.requests.append(body)
            self.headers.append(headers)
            index = min(len(self.requests), len(self.replies)) - 1
            return self.replies[index]


def completion(content: str | None, *, prompt_tokens=1200, completion_tokens=300, cached=0, refusal=None,
               finish_reason="stop", model="gpt-4o-mini-2024-07-18") -> dict[str, Any]:  # fmt: skip
    return {
        "id": "chatcmpl-test123",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
        "system_fingerprint": "fp_test",
    }


def error(status: int, message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": code, "param": None, "code": code}}


def answer(**overrides: Any) -> str:
    reply = {
        "action": "partial_refund",
        "amount": 30.0,
        "confidence": 0.87,
        "reasoning": "Charged 150.00 against a contracted 120.00; the difference is refunded (POL-006 §2).",
        "cited_policies": ["POL-006 §2"],
        "similar_cases": ["HIST-0001"],
    }
    return json.dumps(reply | overrides)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    fake: FakeOpenAI | None = None

    def handle(request: Request) -> Reply:
        if request.target != "/v1/chat/completions":
            return Reply(404, error(404, f"no route {request.target}", "not_found"))
        return fake.next_reply(json.loads(request.body), {k.lower(): v for k, v in request.headers.items()})

    with FakeServer(handle) as http:
        fake = FakeOpenAI(port=http.port)
        yield fake


def _dispute():
    """A wrong-amount dispute through the real domain: context, facts, policies, cases, prompt."""
    context = f.context(
        dispute_type="wrong_amount",
        charges=[f.charge(amount=D("150.00"))],
        amount=D("150.00"),
        description="Billed the Business price, I am on Team. Card 4111 1111 1111 1111, jane@example.com.",
    )
    facts = derive_facts(context)
    policies = [f.policy_hit(6).model_copy(update={"citation": "POL-006 §2", "policy_id": "POL-006"}), f.policy_hit(1)]
    cases = [f.similar_case(1), f.similar_case(2)]
    prompt = build_prompt(context, facts, policies, cases)
    return context, facts, prompt, policies, cases


@pytest.fixture(scope="module")
def dispute():
    return _dispute()


def propose(server: FakeOpenAI, dispute, **settings: Any):
    context, facts, prompt, policies, cases = dispute
    proposer = OpenAIProposer(api_key="test", base_url=server.base_url, **({"max_retries": 1} | settings))
    return proposer.propose(context, facts, prompt, policies, cases)


# -- a good reply --------------------------------------------------------------------------------


def test_valid_reply_becomes_a_proposal_with_its_cost(server, dispute):
    server.script(Reply(body=completion(answer(), prompt_tokens=1200, completion_tokens=300)))
    proposal = propose(server, dispute)
    assert (proposal.action, proposal.amount) == (Action.PARTIAL_REFUND, D("30.00"))
    assert proposal.confidence == pytest.approx(0.87)
    assert (proposal.input_tokens, proposal.output_tokens) == (1200, 300)
    assert proposal.cost_usd == D("0.00036")
    assert proposal.cited_policies == ["POL-006 §2"] and proposal.similar_cases == ["HIST-0001"]
    assert (proposal.model, proposal.provider, proposal.prompt_version) == ("gpt-4o-mini", "openai", PROMPT_VERSION)
    assert proposal.currency == "USD"
    assert proposal.flags == []
    assert "model_failure" not in proposal.flags
    assert len(server.requests) == 1


def test_cached_prompt_tokens_are_billed_at_the_cached_rate(server, dispute):
    server.script(Reply(body=completion(answer(), prompt_tokens=2000, completion_tokens=0, cached=1024)))
    assert propose(server, dispute).cost_usd == D("0.0002232")


def test_citations_and_cases_not_in_the_prompt_are_dropped_with_a_flag(server, dispute):
    content = answer(cited_policies=["POL-006 §2", "POL-999 §9"], similar_cases=["HIST-0002", "HIST-4242"])
    server.script(Reply(body=completion(content)))
    proposal = propose(server, dispute)
    assert proposal.cited_policies == ["POL-006 §2"]
    assert proposal.similar_cases == ["HIST-0002"]
    assert "unknown_citation_dropped" in proposal.flags and "unknown_case_dropped" in proposal.flags


def test_reply_amount_is_rounded_to_the_cent(server, dispute):
    server.script(Reply(body=completion(answer(amount=29.999))))
    assert propose(server, dispute).amount == D("30.00")


def test_pii_in_the_model_reasoning_is_masked(server, dispute):
    server.script(Reply(body=completion(answer(reasoning="Card 4111 1111 1111 1111 of jane@example.com"))))
    reasoning = propose(server, dispute).reasoning
    assert "4111 1111" not in reasoning and "jane@example.com" not in reasoning


def test_absurd_amount_from_the_model_never_crashes_the_proposal(server, dispute):
    # A talked-into-it model may answer any number; the guardrails need a proposal to clip.
    server.script(Reply(body=completion(answer(amount=1e15))))
    proposal = propose(server, dispute)
    assert (proposal.action, proposal.amount, proposal.flags) == (Action.ESCALATE, D("0"), ["model_failure"])
    assert len(server.requests) == 2  # asked again once, then a person decides


# -- the request ---------------------------------------------------------------------------------


def test_request_carries_model_messages_output_cap_and_json_schema(server, dispute):
    _, _, prompt, _, _ = dispute
    server.script(Reply(body=completion(answer())))
    propose(server, dispute)
    (body,) = server.requests
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == prompt.messages
    assert body["messages"][0]["role"] == "system"
    assert 0 < body["max_tokens"] <= 1000
    assert body["temperature"] == 0
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == REPLY_SCHEMA["name"]
    assert response_format["json_schema"]["strict"] is True
    schema = response_format["json_schema"]["schema"]
    assert set(schema["required"]) == {"action", "amount", "confidence", "reasoning", "cited_policies", "similar_cases"}
    assert schema["properties"]["action"]["enum"] == [a.value for a in Action]
    assert server.headers[0]["authorization"] == "Bearer test"
    # Nothing personal leaves for the model.
    sent = json.dumps(body)
    assert "4111 1111 1111 1111" not in sent and "jane@example.com" not in sent


# -- failures ------------------------------------------------------------------------------------


def test_rate_limited_then_success(server, dispute):
    server.script(
        Reply(429, error(429, "Rate limit reached for gpt-4o-mini", "rate_limit_exceeded"), {"Retry-After": "0"}),
        Reply(body=completion(answer())),
    )
    proposal = propose(server, dispute, max_retries=1)
    assert proposal.action == Action.PARTIAL_REFUND
    assert "model_failure" not in proposal.flags
    assert len(server.requests) == 2
    # A refused request is not billed: one billable request, at its usage, nothing estimated.
    assert (proposal.requests, proposal.input_tokens, proposal.estimated_cost_usd) == (1, 1200, 0)


def test_server_errors_until_giving_up_escalate(server, dispute):
    server.script(Reply(500, error(500, "The server had an error", "server_error")))
    proposal = propose(server, dispute, max_retries=2)
    assert len(server.requests) == 2 + 1
    assert (proposal.action, proposal.amount) == (Action.ESCALATE, D("0"))
    assert proposal.flags == ["model_failure"]
    assert "500" in proposal.reasoning
    assert proposal.confidence == 0
    assert proposal.cost_usd == 0 and proposal.requests == 0  # errors are not billed


def test_timeout_escalates_and_counts_every_attempt_at_an_estimate(server, dispute):
    _, _, prompt, _, _ = dispute
    server.script(Reply(body=completion(answer()), delay=3.0))
    started = time.perf_counter()
    proposal = propose(server, dispute, timeout_seconds=0.5, max_retries=1)
    assert time.perf_counter() - started < 3.0  # the client gave up; it did not wait for the reply
    assert (proposal.action, proposal.flags) == (Action.ESCALATE, ["model_failure"])
    assert len(server.requests) == 2
    # Both requests reached the server: the provider may bill both, though we never saw usage.
    assert proposal.requests == 2
    assert proposal.input_tokens == proposal.estimated_input_tokens == 2 * prompt.input_tokens
    assert proposal.output_tokens == 0
    assert proposal.cost_usd == proposal.estimated_cost_usd == D(2 * prompt.input_tokens) * D("0.15") / 1_000_000
    assert "did not answer within 0.5 s" in proposal.reasoning and "unreachable" not in proposal.reasoning
    assert "estimated $" in proposal.reasoning


def test_a_timed_out_attempt_before_an_answer_is_billed_too(server, dispute):
    server.script(
        Reply(body=completion(answer()), delay=3.0), Reply(body=completion(answer(), prompt_tokens=1200, completion_tokens=300))
    )
    proposal = propose(server, dispute, timeout_seconds=0.5, max_retries=1)
    assert proposal.action == Action.PARTIAL_REFUND and len(server.requests) == 2
    # The answered request's usage, and the timed-out one at the provider's own count for this prompt.
    assert (proposal.requests, proposal.input_tokens, proposal.estimated_input_tokens) == (2, 2400, 1200)
    assert proposal.cost_usd == D("0.00036") + D("0.00018") and proposal.estimated_cost_usd == D("0.00018")


def test_a_re_ask_that_times_out_keeps_the_per_request_input_whole(server, dispute):
    server.script(Reply(body=completion('{"action": "full_refund", "amount": ')), Reply(body=completion(answer()), delay=3.0))
    proposal = propose(server, dispute, timeout_seconds=0.5, max_retries=0, invalid_reply_retries=1)
    assert len(server.requests) == 2 and proposal.flags == ["model_failure"]
    assert (proposal.requests, proposal.input_tokens, proposal.estimated_input_tokens) == (2, 2400, 1200)
    # The input cap is per request: each request carried the whole prompt, not half of it.
    input_cap = evaluate_caps(proposal, D("150"), D("150"), CapLimits(max_input_tokens=1500))[0]
    assert (input_cap.figure, input_cap.passed) == (D("1200"), True)
    assert evaluate_caps(proposal, D("150"), D("150"), CapLimits(max_input_tokens=1100))[0].passed is False


def test_a_dropped_connection_is_billed_at_an_estimate(server, dispute):
    _, _, prompt, _, _ = dispute
    server.script(Reply(drop=True))
    proposal = propose(server, dispute, max_retries=1)
    assert len(server.requests) == 2 and proposal.flags == ["model_failure"]
    assert (proposal.requests, proposal.estimated_input_tokens) == (2, 2 * prompt.input_tokens)
    assert "dropped 2 of 2 requests unanswered" in proposal.reasoning


def test_an_answer_without_usage_is_billed_at_an_estimate(server, dispute):
    _, _, prompt, _, _ = dispute
    body = completion(answer())
    del body["usage"]
    server.script(Reply(body=body))
    proposal = propose(server, dispute)
    assert proposal.action == Action.PARTIAL_REFUND
    assert (proposal.requests, proposal.input_tokens, proposal.estimated_input_tokens) == (
        1,
        prompt.input_tokens,
        prompt.input_tokens,
    )
    assert proposal.estimated_cost_usd > 0 and proposal.cost_usd == proposal.estimated_cost_usd


def test_an_unreachable_server_bills_nothing():
    from dispute_platform_tests.fake_http import FakeServer

    with FakeServer(lambda request: Reply()) as closed:
        port = closed.port  # the port is free again once the server is closed
    context, facts, prompt, policies, cases = _dispute()
    proposer = OpenAIProposer(api_key="test", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1)
    proposal = proposer.propose(context, facts, prompt, policies, cases)
    assert proposal.flags == ["model_failure"] and "unreachable" in proposal.reasoning
    assert (proposal.requests, proposal.cost_usd, proposal.estimated_cost_usd) == (0, 0, 0)
    assert proposal.input_tokens == prompt.input_tokens  # the prompt's size, as the rules engine reports it


def test_malformed_json_twice_escalates_after_one_re_ask(server, dispute):
    server.script(Reply(body=completion('{"action": "full_refund", "amount": ')))
    proposal = propose(server, dispute, invalid_reply_retries=1)
    assert len(server.requests) == 2  # the first answer and one re-ask
    assert (proposal.action, proposal.flags) == (Action.ESCALATE, ["model_failure"])
    assert "JSON" in proposal.reasoning
    # Both answers were paid for.
    assert (proposal.input_tokens, proposal.output_tokens, proposal.requests) == (2400, 600, 2)
    assert proposal.cost_usd == D("0.00072") and proposal.estimated_cost_usd == 0


def test_malformed_json_then_a_valid_answer_succeeds(server, dispute):
    server.script(Reply(body=completion("Sure! Here is my answer: refund it.")), Reply(body=completion(answer())))
    proposal = propose(server, dispute)
    assert proposal.action == Action.PARTIAL_REFUND
    assert len(server.requests) == 2


def test_reply_outside_the_schema_is_not_accepted(server, dispute):
    server.script(Reply(body=completion(answer(action="refund_everything", amount=-5))))
    proposal = propose(server, dispute, invalid_reply_retries=0)
    assert (proposal.action, proposal.flags) == (Action.ESCALATE, ["model_failure"])
    assert len(server.requests) == 1


def test_refusal_escalates_without_re_asking(server, dispute):
    server.script(Reply(body=completion(None, refusal="I'm sorry, I can't help with that.", completion_tokens=10)))
    proposal = propose(server, dispute)
    assert (proposal.action, proposal.flags) == (Action.ESCALATE, ["model_failure"])
    assert "refused" in proposal.reasoning
    assert len(server.requests) == 1


def test_client_error_is_not_retried(server, dispute):
    server.script(Reply(401, error(401, "Incorrect API key provided", "invalid_api_key")))
    proposal = propose(server, dispute, max_retries=2)
    assert len(server.requests) == 1
    assert (proposal.action, proposal.flags) == (Action.ESCALATE, ["model_failure"])
    assert "answered 401: " in proposal.reasoning and "retries" not in proposal.reasoning
