#!/usr/bin/env python3
"""What reporting the cap checks per dispute costs in Dagster's event writes.

One range run of N partitions of an empty asset on a Postgres-backed Dagster instance (as
deployed, with DAGSTER_EVENT_BATCH_SIZE=1000 as the CLI sets it), in the two shapes the
platform has had:

- `batch`: the asset returns one MaterializeResult for the range (per-partition metadata, written
  in one batched INSERT) and four separate partitioned `@asset_check`s each return one result for
  the whole run (the shape before issue 15's cap-check change);
- `per-dispute`: the asset yields one AssetMaterialization per partition and, for four checks
  declared on it, one AssetCheckEvaluation per partition and check (the shape of `ai_proposal`
  now). Dagster writes each of these events on its own (no batch write for check evaluations).

Bodies are empty: the difference is Dagster's event writes alone. Prints the run's wall time and
each step's time per shape.

Usage: python scripts/bench_check_events.py [--n 250] [--admin-url URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")

from dispute_platform.domain.caps import CAP_NAMES as CHECKS  # noqa: E402 - after the path is set


def definitions(shape: str):
    from dagster import (
        AssetCheckResult,
        BackfillPolicy,
        DynamicPartitionsDefinition,
        MaterializeResult,
        asset,
        asset_check,
    )

    parts = DynamicPartitionsDefinition(name="bench")
    if shape == "batch":

        @asset(name="proposal", partitions_def=parts, backfill_policy=BackfillPolicy.single_run())
        def batch_asset(context):
            for key in context.partition_keys:
                context.add_asset_metadata({"case": key}, partition_key=key)
            return MaterializeResult()

        def make(name: str):
            @asset_check(asset=batch_asset, name=name, partitions_def=parts)
            def one_check(context):
                return AssetCheckResult(passed=True, metadata={"disputes_checked": len(context.partition_keys)})

            return one_check

        return [batch_asset, *[make(n) for n in CHECKS]]

    return [per_dispute_proposal("proposal", parts)]


def per_dispute_proposal(name: str, parts, deps=()):
    """An empty asset with `ai_proposal`'s event shape: one materialization per partition and, for
    the four cap checks declared on it, one evaluation per partition and check (Dagster writes
    each of these on its own). Shared with bench_throughput.py's Dagster floor."""
    from dagster import AssetCheckEvaluation, AssetCheckSpec, AssetKey, AssetMaterialization, BackfillPolicy, Output, asset

    key = AssetKey(name)

    @asset(
        name=name, partitions_def=parts, backfill_policy=BackfillPolicy.single_run(), deps=list(deps), output_required=False,
        check_specs=[AssetCheckSpec(n, asset=key, partitions_def=parts) for n in CHECKS],
    )  # fmt: skip
    def per_dispute_asset(context):
        for partition in context.partition_keys:
            yield AssetMaterialization(asset_key=key, partition=partition, metadata={"case": partition})
        for partition in context.partition_keys:
            for check in CHECKS:
                yield AssetCheckEvaluation(
                    asset_key=key, check_name=check, passed=True, partition=partition, metadata={"figure": 1.0, "cap": 2.0}
                )
        for check_key in context.selected_asset_check_keys:
            yield Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key))

    return per_dispute_asset


def measure(shape: str, n: int, admin_url: str) -> tuple[float, dict[str, float]]:
    import yaml
    from dagster import DagsterInstance, materialize

    from dispute_platform.local import dagster_yaml
    from dispute_platform.store.db import sqlalchemy_url
    from dispute_platform.store.scratch import scratch_database

    with scratch_database(admin_url, "dp_bench_checks") as url, tempfile.TemporaryDirectory() as home:
        os.environ["DAGSTER_POSTGRES_URL"] = sqlalchemy_url(url)
        config = {k: v for k, v in dagster_yaml().items() if k != "python_logs"}
        Path(home, "dagster.yaml").write_text(yaml.safe_dump(config))
        instance = DagsterInstance.from_config(home)
        try:
            keys = [f"CASE-{i:05d}" for i in range(n)]
            instance.add_dynamic_partitions("bench", keys)
            started = time.perf_counter()
            result = materialize(
                definitions(shape), instance=instance,
                tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
            )  # fmt: skip
            wall = time.perf_counter() - started
            assert result.success
            steps = {s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(result.run_id)}
            return wall, steps
        finally:
            instance.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=250, help="partitions in the run (DISPUTES_PER_RUN's default: 250)")
    parser.add_argument(
        "--admin-url", default=os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args()
    for shape in ("batch", "per-dispute"):
        wall, steps = measure(shape, args.n, args.admin_url)
        detail = ", ".join(f"{k} {v:.1f} s" for k, v in steps.items())
        print(f"{shape:12s} n={args.n}: run {wall:.1f} s ({detail}); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
