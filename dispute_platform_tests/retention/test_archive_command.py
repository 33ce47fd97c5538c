"""`dispute-platform archive [--dry-run]`: one pass on the configured instance, reported as a table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from dagster import DagsterInstance

from dispute_platform.local import dagster_yaml
from dispute_platform_tests.operations.test_doctor import local_env  # noqa: F401 - fixture
from dispute_platform_tests.retention.conftest import open_disputes, settle

pytestmark = pytest.mark.integration


def test_archive_command_dry_run_then_a_real_pass(db, local_env):  # noqa: F811
    from dispute_platform.cli import main

    old, recent, waiting = open_disputes(db, 3)
    settle(db, old, "completed", days_ago=31)
    settle(db, recent, "completed", days_ago=2)
    settle(db, waiting, "pending_review", days_ago=90)
    with _instance(local_env["DAGSTER_HOME"]) as instance:
        for key in instance.get_dynamic_partitions("disputes"):
            instance.delete_dynamic_partition("disputes", key)
        instance.add_dynamic_partitions("disputes", [old, recent, waiting])

    cli = CliRunner()
    dry = cli.invoke(main, ["archive", "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and f"would archive (oldest first): {old}" in dry.output
    assert db.fetch_one("SELECT COUNT(*) AS n FROM archive_passes")["n"] == 0

    done = cli.invoke(main, ["archive"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "archived" in done.output
    with _instance(local_env["DAGSTER_HOME"]) as instance:
        assert sorted(instance.get_dynamic_partitions("disputes")) == sorted([recent, waiting])
    assert db.fetch_one("SELECT archived FROM archive_passes")["archived"] == 1


def _instance(home: str) -> DagsterInstance:
    """The instance the CLI opens: DAGSTER_HOME's dagster.yaml, storage on the test's Postgres."""
    folder = Path(home)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "dagster.yaml").exists():
        (folder / "dagster.yaml").write_text(yaml.safe_dump(dagster_yaml(), sort_keys=False))
    return DagsterInstance.from_config(home)
