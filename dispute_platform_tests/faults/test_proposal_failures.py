"""The OpenAIProposer against a local chat-completions server that breaks (a gateway answering 200
with an HTML page instead of a completion), and the proposal cache:

1. a failing provider marks the dispute `proposal_failed` (audited, nothing saved or billed), the
   step retries, and `regenerate` (or any later run) recovers it once the server answers again;
2. an identical prompt is answered from the cache (no request, $0, `cache_hit`), even while the
   server is broken; remembering a resolution of the same dispute type drops the type's entries,
   and the next proposal goes back to the model.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from dagster import DagsterInstance, materialize

from dispute_platform.resources.llm import OpenAIProposer
from dispute_platform_tests.definitions import ai_proposal
from dispute_platform_tests.faults.support import Reply, case_in_prompt, completion, event_for, fake_chat
from dispute_platform_tests.integration.harness import build_test_resources, decide, run_intake, run_review, store_events

pytestmark = pytest.mark.integration

OUTAGE, OTHER_OUTAGE = "CASE-1004", "CASE-1021"  # both service_outage
STEP_RETRIES = 3  # the retry policy on ai_proposal (build_dispute_assets)
GATEWAY_PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"


def _server(state: dict):
    def respond(body: dict, n: int) -> Reply:
        if state["broken"]:
            return Reply(200, GATEWAY_PAGE)
        reply = {"action": "credit", "amount": 40.0, "confidence": 0.8, "reasoning": "Outage credit per policy.",
                 "cited_policies": [], "similar_cases": []}  # fmt: skip
        return Reply(body=completion(json.dumps(reply), prompt_tokens=700, completion_tokens=60))

    return fake_chat(respond, case_in_prompt)


def _proposer(server) -> OpenAIProposer:
    return OpenAIProposer(api_key="sk-test-not-a-real-key-000000", base_url=server.base_url, timeout_seconds=5, max_retries=0)


def _instance(*keys: str) -> DagsterInstance:
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("disputes", list(keys))
    return instance


def _propose(resources, key: str, *, regenerate: bool):
    """A run of ai_proposal (and its checks) for one dispute, as the launchpad starts it."""
    return materialize(
        [ai_proposal],  # its four cap checks are declared on it
        instance=_instance(key),
        resources=resources,
        partition_key=key,
        run_config={"ops": {"ai_proposal": {"config": {"regenerate": regenerate}}}},
        raise_on_error=False,
    )


def _attempts(result, step: str) -> int:
    return sum(1 for e in result.all_events if e.step_key == step and e.event_type_value in ("STEP_START", "STEP_RESTARTED"))


def _state(db, case_id: str) -> dict:
    return db.fetch_one("SELECT status, status_reason, proposal_version, llm_cost FROM workflow_states WHERE case_id = %s",
                        (case_id,))  # fmt: skip


def _versions(db, case_id: str) -> list[dict]:
    return db.fetch_all("SELECT version, proposal FROM proposals WHERE case_id = %s ORDER BY version", (case_id,))


def test_a_failing_provider_marks_proposal_failed_and_regenerate_recovers(db, sqs, pg_url, tmp_path, chroma_dir, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    state = {"broken": True}
    with _server(state) as server:
        resources = build_test_resources(pg_url, sqs, tmp_path, proposer=_proposer(server))
        store_events(db, [event_for(OUTAGE)])
        failed = run_intake(DagsterInstance.ephemeral(), resources, [OUTAGE])

        assert not failed.success
        assert _attempts(failed, "ai_proposal") == 1 + STEP_RETRIES and server.counts[OUTAGE] == 1 + STEP_RETRIES
        current = _state(db, OUTAGE)
        assert current["status"] == "proposal_failed" and "JSONDecodeError" in current["status_reason"]
        audited = db.fetch_all("SELECT details FROM audit_log WHERE case_id = %s AND step = 'ai_proposal' AND event = 'failed'",
                               (OUTAGE,))  # fmt: skip
        assert len(audited) == 1 + STEP_RETRIES and all("JSONDecodeError" in a["details"]["error"] for a in audited)
        assert _versions(db, OUTAGE) == [] and current["llm_cost"] == 0  # nothing saved, nothing billed
        assert db.fetch_one("SELECT COUNT(*) AS n FROM proposal_cache")["n"] == 0  # a failure is never cached

        # The server answers again: a reviewer's `regenerate` (any later run would do) recovers it.
        state["broken"] = False
        recovered = _propose(resources, OUTAGE, regenerate=True)
        assert recovered.success, [e.message for e in recovered.all_events if e.is_failure]
        assert server.counts[OUTAGE] == 2 + STEP_RETRIES

    current = _state(db, OUTAGE)
    assert current["status"] == "pending_review" and current["status_reason"] is None and current["proposal_version"] == 1
    [v1] = _versions(db, OUTAGE)
    assert v1["proposal"]["action"] == "credit" and v1["proposal"]["cache_hit"] is False
    assert current["llm_cost"] > 0


def test_the_cache_answers_an_identical_prompt_until_a_resolution_of_its_type_is_remembered(
    db, sqs, pg_url, tmp_path, chroma_dir, monkeypatch
):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    state = {"broken": False}
    with _server(state) as server:
        resources = build_test_resources(pg_url, sqs, tmp_path, proposer=_proposer(server))
        store_events(db, [event_for(OUTAGE), event_for(OTHER_OUTAGE)])
        assert run_intake(DagsterInstance.ephemeral(), resources, [OUTAGE, OTHER_OUTAGE]).success
        assert server.counts[OUTAGE] == 1
        assert db.fetch_one("SELECT COUNT(*) AS n FROM proposal_cache WHERE case_id = %s", (OUTAGE,))["n"] == 1
        cost_v1 = _state(db, OUTAGE)["llm_cost"]

        # The same prompt again, with the server broken: answered from the cache, no request, $0.
        state["broken"] = True
        hit = _propose(resources, OUTAGE, regenerate=True)
        assert hit.success, [e.message for e in hit.all_events if e.is_failure]
        assert server.counts[OUTAGE] == 1
        v1, v2 = _versions(db, OUTAGE)
        assert v2["proposal"]["cache_hit"] is True and Decimal(str(v2["proposal"]["cost_usd"])) == 0
        assert (v2["proposal"]["action"], v2["proposal"]["amount"]) == (v1["proposal"]["action"], v1["proposal"]["amount"])
        assert _state(db, OUTAGE)["llm_cost"] == cost_v1
        assert _state(db, OUTAGE)["status"] == "pending_review" and _state(db, OUTAGE)["proposal_version"] == 2
        assert db.fetch_one("SELECT hits FROM proposal_cache WHERE case_id = %s", (OUTAGE,))["hits"] == 1

        # Another outage dispute is decided, executed and remembered: the type's entries are dropped.
        decide(db, OTHER_OUTAGE, "approved", "alice")
        assert run_review(_instance(OTHER_OUTAGE), resources, OTHER_OUTAGE).success
        [remembered] = db.fetch_all("SELECT details FROM audit_log WHERE case_id = %s AND event = 'remembered'", (OTHER_OUTAGE,))
        assert remembered["details"]["cache_entries_dropped"] == 2  # both disputes' replies
        assert db.fetch_one("SELECT COUNT(*) AS n FROM proposal_cache")["n"] == 0

        # So the next proposal asks the model again (which is still broken).
        miss = _propose(resources, OUTAGE, regenerate=True)
        assert not miss.success and server.counts[OUTAGE] == 1 + 1 + STEP_RETRIES
    assert _state(db, OUTAGE)["status"] == "proposal_failed"
