"""A source system (CRM, billing or payments) that fails during `enriched_context`: the dispute is
marked `fetch_failed` with the error, the step is retried, and the dispute recovers once the
source answers again; past the retries it stays `fetch_failed` (never proposed on partial data)
until a later run fetches it. Real PostgreSQL, SQS and Chroma; the sandbox providers behind a
switch that makes them fail like an unreachable vendor."""

from __future__ import annotations

import threading

import pytest
from dagster import DagsterInstance

from dispute_platform_tests.integration.harness import build_test_resources, run_intake, sample_event, store_events

pytestmark = pytest.mark.integration

CASE = "CASE-1063"
FETCH = {"crm": "fetch_case", "billing": "fetch_billing", "payments": "fetch_payments"}
STEP_RETRIES = 3  # the retry policy on enriched_context (build_dispute_assets)


class Failing:
    """A source whose fetch fails with a connection error for its first `times` calls."""

    def __init__(self, real, method: str, times: int):
        self.real, self.method, self.times, self.calls = real, method, times, 0
        self._lock = threading.Lock()

    def __getattr__(self, name):
        attribute = getattr(self.real, name)
        if name != self.method:
            return attribute

        def fetch(*args, **kwargs):
            with self._lock:
                self.calls += 1
                failing = self.calls <= self.times
            if failing:
                raise ConnectionError(f"{self.method}: connection refused by the vendor")
            return attribute(*args, **kwargs)

        return fetch


def _attempts(result, step: str) -> int:
    """Executions of a step in a run: its start and each restart after a retry."""
    return sum(1 for e in result.all_events if e.step_key == step and e.event_type_value in ("STEP_START", "STEP_RESTARTED"))


def _audit(db, event: str) -> list[dict]:
    return db.fetch_all("SELECT step, details FROM audit_log WHERE case_id = %s AND event = %s ORDER BY id", (CASE, event))


@pytest.mark.parametrize("source", sorted(FETCH))
def test_a_source_failing_once_is_retried_and_the_dispute_recovers(db, sqs, pg_url, tmp_path, chroma_dir, source):
    resources = build_test_resources(pg_url, sqs, tmp_path)
    failing = Failing(resources[source], FETCH[source], times=1)
    store_events(db, [sample_event(CASE)])

    result = run_intake(DagsterInstance.ephemeral(), resources | {source: failing}, [CASE])

    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert _attempts(result, "enriched_context") == 2 and failing.calls == 2
    [failed] = _audit(db, "fetch_failed")
    assert failed["step"] == "enriched_context" and "connection refused by the vendor" in failed["details"]["error"]
    state = db.fetch_one("SELECT status, status_reason FROM workflow_states WHERE case_id = %s", (CASE,))
    assert state["status"] == "pending_review" and state["status_reason"] is None
    assert [r["version"] for r in db.fetch_all("SELECT version FROM proposals WHERE case_id = %s", (CASE,))] == [1]


@pytest.mark.parametrize("source", sorted(FETCH))
def test_a_source_down_past_the_retries_leaves_fetch_failed_until_a_later_run(db, sqs, pg_url, tmp_path, chroma_dir, source):
    resources = build_test_resources(pg_url, sqs, tmp_path)
    store_events(db, [sample_event(CASE)])
    down = Failing(resources[source], FETCH[source], times=10_000)

    result = run_intake(DagsterInstance.ephemeral(), resources | {source: down}, [CASE])

    assert not result.success
    assert _attempts(result, "enriched_context") == 1 + STEP_RETRIES and _attempts(result, "ai_proposal") == 0
    state = db.fetch_one("SELECT status, status_reason FROM workflow_states WHERE case_id = %s", (CASE,))
    assert state["status"] == "fetch_failed" and "connection refused by the vendor" in state["status_reason"]
    assert len(_audit(db, "fetch_failed")) == 1 + STEP_RETRIES
    assert db.fetch_all("SELECT 1 FROM proposals WHERE case_id = %s", (CASE,)) == []  # nothing proposed on partial data

    # The vendor is back: the next run (a re-materialisation) picks the dispute up.
    again = run_intake(DagsterInstance.ephemeral(), resources, [CASE])
    assert again.success
    assert db.fetch_one("SELECT status FROM workflow_states WHERE case_id = %s", (CASE,))["status"] == "pending_review"
