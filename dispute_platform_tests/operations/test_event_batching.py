"""DAGSTER_EVENT_BATCH_SIZE (dispute_platform.local.DAGSTER_ENV_DEFAULTS) changes how a range run's
per-partition events are written, not which: on the Postgres instance storage the deployment uses,
every partition still gets its own materialization with its metadata, which is what the UI shows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetKey,
    BackfillPolicy,
    DagsterEventType,
    DagsterInstance,
    DynamicPartitionsDefinition,
    EventRecordsFilter,
    MaterializeResult,
    asset,
    materialize,
)

from dispute_platform.local import DAGSTER_ENV_DEFAULTS, dagster_yaml
from dispute_platform.store.db import sqlalchemy_url
from dispute_platform.store.scratch import scratch_database
from dispute_platform_tests.conftest import ADMIN_URL

pytestmark = pytest.mark.integration

batch_parts = DynamicPartitionsDefinition(name="batch_test")


@asset(partitions_def=batch_parts, backfill_policy=BackfillPolicy.single_run())
def batched_asset(context):  # no annotations: Dagster cannot read this module's string annotations
    for key in context.partition_keys:
        context.add_asset_metadata({"case": key}, partition_key=key)
    return MaterializeResult()


@pytest.mark.parametrize("batch_size", [None, DAGSTER_ENV_DEFAULTS["DAGSTER_EVENT_BATCH_SIZE"]])
def test_a_range_run_records_one_materialization_per_partition_either_way(tmp_path: Path, monkeypatch, batch_size):
    if batch_size is None:
        monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    else:
        monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch_size)
    keys = [f"CASE-{i}" for i in range(7)]
    with scratch_database(ADMIN_URL, "dp_test_batching") as url:
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", sqlalchemy_url(url))
        (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({k: v for k, v in dagster_yaml().items() if k != "python_logs"}))
        instance = DagsterInstance.from_config(str(tmp_path))
        try:
            instance.add_dynamic_partitions("batch_test", keys)
            result = materialize(
                [batched_asset], instance=instance,
                tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
            )  # fmt: skip
            assert result.success
            records = instance.get_event_records(
                EventRecordsFilter(event_type=DagsterEventType.ASSET_MATERIALIZATION, asset_key=AssetKey("batched_asset"))
            )
            by_partition = {r.partition_key: r.asset_materialization.metadata["case"].value for r in records}
            assert by_partition == {k: k for k in keys} and len(records) == len(keys)
            assert instance.get_materialized_partitions(AssetKey("batched_asset")) == set(keys)
            assert os.environ.get("DAGSTER_EVENT_BATCH_SIZE") == batch_size
        finally:
            instance.dispose()
