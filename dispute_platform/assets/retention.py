"""The archive pass as an asset: settled disputes leave the `disputes` partition set in batches.

Unpartitioned; each materialisation is one pass (workflow/retention.py) and its metadata says what
the pass did. The pass never touches a dispute in flight, and Postgres keeps every row.
"""

from dagster import AssetExecutionContext, AssetsDefinition, Config, MaterializeResult, asset
from pydantic import Field

from dispute_platform.domain.retention import RetentionPolicy
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.workflow.retention import run_archive_pass


class ArchiveConfig(Config):
    dry_run: bool = Field(default=False, description="Decide and report only: archive nothing.")


def build_dispute_archive(policy: RetentionPolicy, batch_size: int) -> AssetsDefinition:
    """The archive pass asset under `policy` (PARTITION_RETENTION_DAYS / _MAX), `batch_size` keys at a time."""

    @asset(
        name="dispute_archive",
        group_name="operations",
        kinds={"postgres"},
        description="Archive pass: settled disputes beyond PARTITION_RETENTION_DAYS or the newest "
        "PARTITION_RETENTION_MAX leave the `disputes` partition set (batches of ARCHIVE_BATCH_SIZE) and Dagster runs "
        "that held only archived disputes are deleted with their events; Postgres keeps every row. Never a dispute in "
        "flight.",
    )
    def dispute_archive(context: AssetExecutionContext, config: ArchiveConfig, postgres: PostgresResource) -> MaterializeResult:
        report = run_archive_pass(
            postgres.db, context.instance, policy, batch_size=batch_size, dry_run=config.dry_run, trigger="dagster"
        )
        context.log.info(f"archive pass: {report.metadata()}")
        return MaterializeResult(metadata={**report.metadata(), "dry_run": report.dry_run})

    return dispute_archive
