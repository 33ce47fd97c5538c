"""A snapshot of the Dagster definitions (assets with their partitions, groups, kinds and
dependencies; checks; sensors; schedules; jobs), so that an accidental change shows up in review.
After a deliberate change: UPDATE_SNAPSHOTS=1 pytest dispute_platform_tests/test_definitions_snapshot.py"""

from __future__ import annotations

import json
import os
from pathlib import Path

SNAPSHOT = Path(__file__).parent / "data" / "definitions_snapshot.json"


def describe() -> dict:
    from dispute_platform.definitions import defs

    repo = defs().get_repository_def()
    graph = repo.asset_graph
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": type(partitions).__name__ + (f":{partitions.name}" if getattr(partitions, "name", None) else "")
            if partitions
            else None,  # fmt: skip
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
            "checks": sorted(c.name for c in node.check_keys),
            "pool": node.pools and sorted(node.pools) or None,
        }
    return {
        "assets": assets,
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "schedules": sorted(f"{s.name} {s.cron_schedule}" for s in repo.schedule_defs),
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "resources": sorted(repo.get_top_level_resources()),
    }


def test_definitions_match_the_snapshot():
    current = describe()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        "the Dagster definitions changed: if on purpose, UPDATE_SNAPSHOTS=1 and commit the snapshot"
    )
