"""A Dagster instance on dagster-postgres storage in a scratch database (the deployment's storage),
and stand-ins for the six dispute assets: same keys, same `disputes` partitions, trivial bodies, so
real runs leave the same kind of history the archive pass prunes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from dagster import BackfillPolicy, DagsterInstance, MaterializeResult, asset, materialize

from dispute_platform.local import dagster_yaml
from dispute_platform.partitions import disputes_partitions
from dispute_platform.store.db import sqlalchemy_url
from dispute_platform.store.scratch import scratch_database
from dispute_platform_tests.conftest import ADMIN_URL
from dispute_platform_tests.integration.harness import sample_events, store_events

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


@pytest.fixture
def pg_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
    with scratch_database(ADMIN_URL, "dp_test_retention") as url:
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", sqlalchemy_url(url))
        config = {k: v for k, v in dagster_yaml().items() if k != "python_logs"}
        (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
        instance = DagsterInstance.from_config(str(tmp_path))
        try:
            yield instance
        finally:
            instance.dispose()


def _stand_in(name: str):
    @asset(name=name, partitions_def=disputes_partitions, backfill_policy=BackfillPolicy.single_run())
    def _asset(context):  # no annotations: Dagster cannot read this module's string annotations
        for key in context.partition_keys:
            context.add_asset_metadata({"case": key}, partition_key=key)
        return MaterializeResult()

    return _asset


INTAKE = [_stand_in(n) for n in ("raw_case", "enriched_context", "ai_proposal")]
REVIEW = [_stand_in(n) for n in ("review_decision", "executed_resolution", "resolution_embedding")]


def intake_run(instance: DagsterInstance, keys: list[str]) -> str:
    """A real range run over consecutive keys (as the SQS sensor asks for); returns its run id."""
    result = materialize(INTAKE, instance=instance, tags={RANGE_START: keys[0], RANGE_END: keys[-1]})
    assert result.success
    return result.run_id


def failed_run(instance: DagsterInstance, key: str) -> str:
    """A run that failed before materialising anything: only its planned events name the dispute."""

    @asset(name="raw_case", partitions_def=disputes_partitions)
    def raw_case():
        raise RuntimeError("the CRM is down")

    result = materialize([raw_case], instance=instance, partition_key=key, raise_on_error=False)
    assert not result.success
    return result.run_id


def review_run(instance: DagsterInstance, key: str) -> str:
    result = materialize(REVIEW, instance=instance, partition_key=key)
    assert result.success
    return result.run_id


def open_disputes(db, count: int) -> list[str]:
    """`count` disputes stored as intake stores them (status received); returns their case ids."""
    events = sample_events()[:count]
    store_events(db, events)
    return [e["case_id"] for e in events]


def settle(db, case_id: str, status: str, days_ago: float) -> None:
    """Put a dispute in `status`, settled `days_ago` (test set-up: the state machine is exercised elsewhere)."""
    when = datetime.now(UTC) - timedelta(days=days_ago)
    completed = when if status == "completed" else None
    db.transact(
        lambda cur: cur.execute(
            "UPDATE workflow_states SET status = %s, updated_at = %s, completed_at = %s WHERE case_id = %s",
            (status, when, completed, case_id),
        )
    )


def decide(db, case_id: str, decision: str = "rejected") -> None:
    def write(cur) -> None:
        cur.execute(
            """INSERT INTO reviewers (name, token_sha256) VALUES ('rita', repeat('a', 64))
               ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id"""
        )
        reviewer_id = cur.fetchone()["id"]
        cur.execute(
            """INSERT INTO review_decisions (case_id, proposal_version, decision, reviewer, reviewer_id,
                                             effective_action, effective_amount, source)
               SELECT case_id, proposal_version, %s, 'rita', %s, 'none', 0, 'api' FROM workflow_states WHERE case_id = %s""",
            (decision, reviewer_id, case_id),
        )

    db.transact(write)
