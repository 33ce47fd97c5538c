"""Model failures through the `ai_proposal` asset with the OpenAIProposer against a local
chat-completions server: timeouts, 429, 500, invalid JSON and a refusal. The client retries (the
server counts the requests), then the proposal is an `escalate` flagged `model_failure`, the
dispute waits for a reviewer with the reason, the run does not fail, and every request the provider
may bill is billed: at the usage the server reported, or, for a request that timed out, at an
estimate of its input labelled as such."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

import pytest
from dagster import DagsterInstance

from dispute_platform.domain.costs import call_cost, price_for
from dispute_platform.resources.llm import OpenAIProposer
from dispute_platform_tests.faults.support import Reply, api_error, case_in_prompt, completion, event_for, fake_chat
from dispute_platform_tests.integration.harness import build_test_resources, run_intake, store_events

pytestmark = pytest.mark.integration

TIMEOUT, RATE_LIMITED, SERVER_ERROR, BAD_JSON, REFUSED, RECOVERS = (
    "CASE-1063", "CASE-1065", "CASE-1025", "CASE-1004", "CASE-1006", "CASE-1010",
)  # fmt: skip
MAX_RETRIES = 2


def _responder(body: dict, n: int) -> Reply:
    case = case_in_prompt(body)
    if case == TIMEOUT:
        return Reply(body=completion('{"action": "deny"}'), delay=3.0)
    if case == RATE_LIMITED:
        return Reply(429, api_error(429, "Rate limit reached for gpt-4o-mini"), {"Retry-After": "0"})
    if case == SERVER_ERROR:
        return Reply(500, api_error(500, "The server had an error while processing your request"))
    if case == BAD_JSON:
        return Reply(body=completion('{"action": "full_refund", "amount": ', prompt_tokens=900, completion_tokens=120))
    if case == REFUSED:
        return Reply(body=completion(None, refusal="I can't help with that.", prompt_tokens=800, completion_tokens=10))
    if case == RECOVERS and n == 0:
        return Reply(503, api_error(503, "overloaded"))
    reply = {"action": "credit", "amount": 40.0, "confidence": 0.8, "reasoning": "Outage credit per policy.",
             "cited_policies": [], "similar_cases": []}  # fmt: skip
    return Reply(body=completion(json.dumps(reply), prompt_tokens=700, completion_tokens=60))


def test_model_failures_escalate_with_reasons_after_retries(db, sqs, pg_url, tmp_path, chroma_dir, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    cases = [TIMEOUT, RATE_LIMITED, SERVER_ERROR, BAD_JSON, REFUSED, RECOVERS]
    with fake_chat(_responder, case_in_prompt) as server:
        proposer = OpenAIProposer(
            api_key="sk-test-not-a-real-key-000000", base_url=server.base_url, timeout_seconds=0.5, max_retries=MAX_RETRIES,
            invalid_reply_retries=1,
        )  # fmt: skip
        instance = DagsterInstance.ephemeral()
        resources = build_test_resources(pg_url, sqs, tmp_path, proposer=proposer)
        store_events(db, [event_for(c) for c in cases])
        result = run_intake(instance, resources, cases)
        counts = dict(server.counts)

    assert result.success, [e.message for e in result.all_events if e.is_failure]
    attempts = MAX_RETRIES + 1
    assert counts[TIMEOUT] == attempts and counts[RATE_LIMITED] == attempts and counts[SERVER_ERROR] == attempts, counts
    assert counts[BAD_JSON] == 2  # asked once more after a reply that is not JSON
    assert counts[REFUSED] == 1  # a refusal is an answer: not asked again
    assert counts[RECOVERS] == 2

    proposals = {r["case_id"]: r for r in db.fetch_all("SELECT * FROM proposals")}
    states = {r["case_id"]: r for r in db.fetch_all("SELECT * FROM workflow_states")}
    why = {
        TIMEOUT: "model API did not answer within 0.5 s (3 attempts)",
        RATE_LIMITED: "model API answered 429",
        SERVER_ERROR: "model API answered 500",
        BAD_JSON: "reply is not valid JSON",
        REFUSED: "model refused",
    }
    price = price_for("gpt-4o-mini")
    # The three timed-out attempts reached the server: each may be billed, at the prompt's size.
    timed_out = proposals[TIMEOUT]["proposal"]
    assert timed_out["requests"] == attempts and timed_out["output_tokens"] == 0
    assert timed_out["estimated_input_tokens"] == timed_out["input_tokens"] == attempts * (timed_out["input_tokens"] // attempts)
    assert Decimal(timed_out["estimated_cost_usd"]) == call_cost(price, timed_out["input_tokens"], 0) > 0
    assert "may still be billed (estimated $" in timed_out["reasoning"]
    billed = {
        TIMEOUT: call_cost(price, timed_out["input_tokens"], 0), RATE_LIMITED: Decimal("0"), SERVER_ERROR: Decimal("0"),
        BAD_JSON: call_cost(price, 2 * 900, 2 * 120), REFUSED: call_cost(price, 800, 10),
    }  # fmt: skip
    for case, reason in why.items():
        proposal, state = proposals[case], states[case]
        assert proposal["action"] == "escalate" and "model_failure" in proposal["flags"], (case, proposal)
        assert reason in proposal["proposal"]["reasoning"], (case, proposal["proposal"]["reasoning"])
        assert state["status"] == "model_failed", (case, state["status"])  # a visible state, decided by a person
        assert reason in (state["status_reason"] or ""), (case, state["status_reason"])
        # workflow_states.llm_cost keeps 6 decimals (the seed's column); the proposal keeps 8.
        llm_cost = billed[case].quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
        assert proposal["cost_usd"] == billed[case] and state["llm_cost"] == llm_cost, (case, proposal["cost_usd"])
        checks = db.fetch_all("SELECT passed FROM check_results WHERE case_id = %s", (case,))
        assert len(checks) == 4 and all(c["passed"] for c in checks)
    assert billed[BAD_JSON] > 0 and billed[REFUSED] > 0

    recovered = proposals[RECOVERS]
    assert recovered["action"] == "credit" and "model_failure" not in recovered["flags"]
    assert recovered["cost_usd"] == call_cost(price, 700, 60)
    assert states[RECOVERS]["status"] == "pending_review" and states[RECOVERS]["status_reason"] is None
    # Failures are never cached: asking again goes back to the model.
    assert db.fetch_one("SELECT COUNT(*) AS n FROM proposal_cache")["n"] == 1
