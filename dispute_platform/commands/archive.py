"""`dispute-platform archive`: one archive pass from the terminal (what the hourly schedule runs).

Settled disputes past the retention window leave Dagster's `disputes` partition set, and Dagster
runs that held only archived disputes are deleted with their events; Postgres keeps every row.
`--dry-run` shows what a pass would archive and changes nothing.
"""

from __future__ import annotations

import click


@click.command("archive")
@click.option("--dry-run", is_flag=True, help="Show what one pass would archive; change nothing.")
def archive_command(dry_run: bool) -> None:
    """Run one archive pass: settled disputes past PARTITION_RETENTION_DAYS / _MAX leave the partition set."""
    from dagster import DagsterInstance
    from rich.table import Table

    from dispute_platform.commands.shell import console, local_services, migrate
    from dispute_platform.domain.retention import RetentionPolicy
    from dispute_platform.local import database
    from dispute_platform.settings import get_settings
    from dispute_platform.workflow.retention import run_archive_pass

    with local_services(verbose=False):
        migrate(verbose=False)
        settings = get_settings()
        policy = RetentionPolicy(settings.partition_retention_days, settings.partition_retention_max)
        db = database(get_settings(), maxconn=2)
        try:
            with DagsterInstance.get() as instance:
                report = run_archive_pass(
                    db, instance, policy, batch_size=settings.archive_batch_size, dry_run=dry_run, trigger="cli"
                )
        finally:
            db.close()
        title = "archive pass (dry run: nothing changed)" if dry_run else f"archive pass {report.pass_id}"
        table = Table("figure", "value", title=title)
        for name, value in report.metadata().items():
            table.add_row(name, str(value))
        console.print(table)
        console.print(
            f"retention: {policy.days} days, newest {policy.max_settled:,} settled disputes; "
            "archived disputes stay in Postgres (status, API, desk, cost report)"
        )
        if dry_run and report.selected_keys:
            shown = ", ".join(report.selected_keys[:20])
            console.print(f"would archive (oldest first): {shown}{' ...' if len(report.selected_keys) > 20 else ''}")
