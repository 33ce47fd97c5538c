"""The disputes a run acts on, read once per run process and shared by its steps and checks.

Dagster hands a step the run's partition keys as a range (insertion order of the dynamic
partitions), and every read of `context.partition_keys` lists all of the partition set's keys
again (linear in the set: ~0.3 s at 100,000 keys). A run requested by a sensor also carries a
`dispute_platform/batch` tag: the disputes it was requested for are stored in Postgres
(`run_disputes`), and a key that another writer added between the range's first and last key is
in the range but not in the batch: the assets leave it untouched and say so in its metadata.

A run without the tag (launched from the UI, a backfill, a test's `materialize`) acts on all of its
partition keys: the person who chose them meant them.

`run_disputes(context, db)` takes an asset's or an asset check's context. The answer is cached in
the process per run (the deployment's in-process executor runs every step of a run in one
process), so a run lists the partition set once, not once per asset and check.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from dagster import MetadataValue

from dispute_platform.store import run_disputes as store
from dispute_platform.store.db import Database

BATCH_TAG = "dispute_platform/batch"
PARTITION_TAG = "dagster/partition"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
NOT_THIS_RUNS = "not this run's: untouched (added to the partition set inside this run's range by another writer)"


@dataclass(frozen=True)
class RunDisputes:
    keys: tuple[str, ...]  # the disputes to act on, in partition order
    foreign: tuple[str, ...]  # in the run's range, not requested for this run: left untouched
    batch: str | None  # the sensor's batch (the run key), None for a run launched by a person

    @property
    def all_keys(self) -> tuple[str, ...]:
        """Every partition key the run materialises (Dagster records an event for each)."""
        return self.keys + self.foreign


_CACHE: OrderedDict[tuple[str, str, str], RunDisputes] = OrderedDict()
_LOCK = threading.Lock()
_LISTINGS = {"count": 0}  # partition-set listings made by this module (tests and benchmarks read it)


def _range_keys(context: Any, tags: dict[str, str]) -> list[str]:
    if tags.get(PARTITION_TAG):
        return [tags[PARTITION_TAG]]  # one key: no listing
    start, end = tags.get(RANGE_START), tags.get(RANGE_END)
    if start is not None and start == end:
        return [start]
    _LISTINGS["count"] += 1
    return list(context.partition_keys)


def run_disputes(context: Any, db: Database) -> RunDisputes:
    """The run's disputes: the keys of its range that its batch asked for (all of them without a
    batch), and the others. One listing of the partition set and one query per run process."""
    run = context.run
    tags = dict(run.tags)
    cache_key = (run.run_id, tags.get(RANGE_START) or tags.get(PARTITION_TAG) or "", tags.get(RANGE_END) or "")
    with _LOCK:
        cached = _CACHE.get(cache_key)
        if cached is not None:
            return cached
        keys = _range_keys(context, tags)
        batch = tags.get(BATCH_TAG)
        if batch is None:
            answer = RunDisputes(tuple(keys), (), None)
        else:
            requested = db.transact(lambda cur: store.batch_disputes(cur, batch))
            answer = RunDisputes(tuple(k for k in keys if k in requested), tuple(k for k in keys if k not in requested), batch)
        _CACHE[cache_key] = answer
        while len(_CACHE) > 8:
            _CACHE.popitem(last=False)
        return answer


def add_metadata(context: Any, disputes: RunDisputes, key: str, metadata: dict[str, Any]) -> None:
    """`context.add_asset_metadata(metadata, partition_key=key)` without its check's cost: Dagster
    1.13 checks the key by listing the whole partition set on every call (so a run of 250 keys
    listed it 250 times per asset, linear in the set each time); the key is checked here against
    the run's keys, listed once per run."""
    if key not in disputes.keys and key not in disputes.foreign:
        raise ValueError(f"{key} is not a partition of this run")
    step = getattr(getattr(context, "op_execution_context", None), "_step_execution_context", None)
    accumulator = getattr(step, "_metadata_accumulator", None)
    assets_def = getattr(step, "assets_def", None)
    if accumulator is None or assets_def is None or len(assets_def.keys) != 1:
        context.add_asset_metadata(metadata, partition_key=key)  # another Dagster: the public call
        return
    step._metadata_accumulator = accumulator.with_additional_asset_metadata(
        asset_key=assets_def.key, metadata=metadata, partition_key=key
    )


def report_foreign(context: Any, disputes: RunDisputes) -> None:
    """Each key of the range that is not this run's gets that, and nothing else, as its metadata."""
    if not disputes.foreign:
        return
    for key in disputes.foreign:
        add_metadata(context, disputes, key, {"status": NOT_THIS_RUNS, "batch": disputes.batch or "-"})
    context.log.warning(
        f"{len(disputes.foreign)} partition(s) in this run's range were not requested for batch {disputes.batch}; "
        f"left untouched: {list(disputes.foreign[:10])}"
    )


def foreign_metadata(disputes: RunDisputes) -> dict[str, MetadataValue]:
    """For a check's result: the keys it did not evaluate because they are not this run's."""
    return {"not_this_runs": MetadataValue.json(list(disputes.foreign))} if disputes.foreign else {}
