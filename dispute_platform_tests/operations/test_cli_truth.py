"""Issue 15: the CLI tells the truth. `run` and `status` print whole reasons and guardrail flags,
`run` names the Dagster runs that failed and the log where its daemon writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance, Failure, RetryPolicy, asset, materialize
from rich.console import Console

from dispute_platform.commands.summary import failed_runs_since, summary_table
from dispute_platform.domain.states import Status
from dispute_platform.settings import get_settings
from dispute_platform.store.proposals import save_proposal
from dispute_platform_tests.integration.harness import sample_event, store_events

pytestmark = pytest.mark.integration

LONG_REASON = (
    "the model failed: OpenAI-compatible server answered 503 Service Unavailable after 3 retries "
    "(last error: upstream connect error or disconnect/reset before headers); the reviewer decides"
)


def _render(table) -> str:
    console = Console(record=True, width=400)
    console.print(table)
    return " ".join(console.export_text().split())


def test_status_shows_whole_reasons_and_guardrail_flags(db):
    store_events(db, [sample_event("CASE-1063")])
    proposal = {
        "action": "partial_refund", "amount": "400.00", "currency": "USD", "confidence": 0.4, "provider": "openai",
        "model": "gpt-4o-mini", "prompt_version": "v1", "input_tokens": 900, "output_tokens": 120, "cost_usd": "0.0002",
        "cache_hit": False, "latency_ms": 10, "reasoning": "...",
        "flags": ["trimmed:charges", "amount_capped_to_refundable:99999->400", "model_failure"],
    }  # fmt: skip

    def write(cur) -> None:
        cur.execute("UPDATE workflow_states SET status = 'enriched' WHERE case_id = 'CASE-1063'")  # as intake leaves it
        save_proposal(cur, "CASE-1063", proposal, status=Status.PENDING_REVIEW, allowed_from={Status.ENRICHED},
                      reason=LONG_REASON, run_id=None)  # fmt: skip

    db.transact(write)
    text = _render(summary_table(db, "Disputes"))
    assert " ".join(LONG_REASON.split()) in text  # not cut at 80 characters
    assert "amount_capped_to_refundable:99999->400" in text and "model_failure" in text
    assert "trimmed:charges" not in text  # routine budget trimming is not news


def test_failed_runs_are_named_with_the_failing_step_and_the_root_cause():
    # A step that runs out of retries fails with "Exceeded max_retries of 1": the cause is the news.
    @asset(retry_policy=RetryPolicy(max_retries=1))
    def blocked_batch() -> None:
        raise Failure(description="1 of 42 disputes over the amount cap: CASE-1002")

    since = datetime.now(UTC) - timedelta(seconds=1)
    with DagsterInstance.ephemeral() as instance:
        assert not materialize([blocked_batch], instance=instance, raise_on_error=False).success
        [(run_id, step, why)] = failed_runs_since(since, instance)
        assert run_id and step == "__ephemeral_asset_job__"
        assert why == "blocked_batch: 1 of 42 disputes over the amount cap: CASE-1002"
        assert failed_runs_since(datetime.now(UTC) + timedelta(minutes=1), instance) == []


def test_background_logs_go_where_dispute_platform_home_says(tmp_path, monkeypatch):
    from dispute_platform.commands.shell import background as _background

    monkeypatch.setenv("DISPUTE_PLATFORM_HOME", str(tmp_path / "elsewhere"))
    get_settings.cache_clear()
    try:
        child = _background("python", "-c", "print('hello from the daemon')", log_name="daemon")
        child.process.wait(timeout=30)
        assert child.log_path == tmp_path / "elsewhere" / "logs" / "daemon.log"
        assert "hello from the daemon" in child.log_path.read_text()
    finally:
        get_settings.cache_clear()
