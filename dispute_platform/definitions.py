"""The one Definitions object: assets (with the cap checks declared on ai_proposal), sensors,
schedules and the resources behind them, built by `build_definitions(settings)` from one `Settings`.

Dagster loads `defs`, a lazy `@definitions` function: the settings are read once, when the code
location loads, and passed down; importing this module (or any module of definitions) reads no
configuration. A function rather than Dagster's `defs/` folder: the platform's definitions depend
on each other's settings-derived parts (jobs, schedules, the archive asset), which one function
composes explicitly and a test can call with any `Settings`.

This is the composition root: configuration (the environment) chooses each resource's
implementation here, once; nothing below it asks which implementation it got. Secrets are passed
as `EnvVar`s, resolved in the run process and never shown in the UI.
"""

from __future__ import annotations

from typing import Any

from dagster import (
    DefaultScheduleStatus,
    Definitions,
    EnvVar,
    ScheduleDefinition,
    define_asset_job,
    definitions,
    in_process_executor,
)

from dispute_platform.assets.disputes import build_dispute_assets
from dispute_platform.assets.knowledge import build_company_policies, historical_resolutions, proposal_calibration
from dispute_platform.assets.retention import build_dispute_archive
from dispute_platform.domain.retention import RetentionPolicy
from dispute_platform.logs import install_workflow_log
from dispute_platform.operations import build_operations
from dispute_platform.resources.connectors.config import ConnectorSettings, select_providers
from dispute_platform.resources.email import OutboxEmail, SmtpEmail
from dispute_platform.resources.limits import Limits
from dispute_platform.resources.llm import OpenAIProposer, PrecedentProposer
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.sqs import SQSResource
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.sensors import build_sensors
from dispute_platform.settings import Settings, get_settings

LOCAL_EVENTS_QUEUE = "dispute-events"
LOCAL_REVIEW_QUEUE = "human-review-notifications"
LOCAL_DLQ = "dispute-events-dlq"


def _secret(name: str, present: bool) -> Any:
    return EnvVar(name) if present else None


def build_resources(settings: Settings) -> dict[str, Any]:
    postgres = PostgresResource(
        database_url=_secret("DATABASE_URL", settings.database_url is not None),
        pgdata=str(settings.pgdata),
        max_connections=settings.postgres_connections,
    )
    sandbox = {"sandbox_data": str(settings.sandbox_data) if settings.sandbox_data else None, "postgres": postgres}
    if settings.resolved_llm_provider == "openai":
        proposer: Any = OpenAIProposer.from_settings(settings, EnvVar("OPENAI_API_KEY"))
    else:
        proposer = PrecedentProposer()
    if settings.smtp_configured:
        email: Any = SmtpEmail(
            host=settings.smtp_host or "smtp.gmail.com",
            port=settings.smtp_port,
            username=settings.gmail_email,
            password=_secret("GMAIL_APP_PASSWORD", settings.gmail_app_password is not None),
            sender=settings.gmail_email or settings.approver_email,
        )
    else:
        email = OutboxEmail(outbox_dir=str(settings.outbox))
    return {
        "postgres": postgres,
        "sqs": SQSResource(
            region_name=settings.aws_region,
            endpoint_url=settings.sqs_endpoint_url,
            dispute_events_queue_url=settings.dispute_events_queue_url or "",
            human_review_queue_url=settings.human_review_notifications_queue_url,
            dead_letter_queue_url=settings.dispute_events_dlq_url,
        ),
        # The vendors' connectors when their variables are set, the sandbox otherwise.
        **select_providers(ConnectorSettings(), sandbox),
        "vectors": VectorStoreResource.from_settings(settings),
        "proposer": proposer,
        # A plain object, not a configurable resource: run config cannot change a limit.
        "limits": Limits.from_settings(settings),
        "email": email,
    }


def build_definitions(settings: Settings) -> Definitions:
    """Every definition of the code location, built from one `Settings`: sensor intervals, cron
    schedules, run sizes, retry delays and the values asset bodies use all come from it, and so do
    the resources. Nothing below reads the environment or calls `get_settings()`."""
    # Platform logs (dispute_platform.*) to LOG_DIR/workflow.log in every process that loads the
    # definitions; Dagster's per-run logs reach the same file through dagster.yaml's python_logs.
    install_workflow_log(settings.log_dir)
    operations = build_operations(settings)
    archive = build_dispute_archive(
        RetentionPolicy(settings.partition_retention_days, settings.partition_retention_max), settings.archive_batch_size
    )
    archive_job = define_asset_job(
        "dispute_archive_job",
        selection=[archive],
        tags={"dispute_platform/step": "archive"},
        description="One archive pass over the disputes partition set.",
    )
    hourly_archive = ScheduleDefinition(
        name="hourly_dispute_archive",
        job=archive_job,
        cron_schedule=settings.archive_cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Archives settled disputes past the retention window (PARTITION_RETENTION_DAYS / _MAX) in batches: "
        "keeps Dagster's partition set bounded; never a dispute in flight.",
    )
    return Definitions(
        assets=[
            *build_dispute_assets(settings),
            build_company_policies(settings.policies_dir),
            historical_resolutions,
            proposal_calibration,
            *operations.assets,
            archive,
        ],
        sensors=[*build_sensors(settings), *operations.sensors],
        schedules=[*operations.schedules, hourly_archive],
        jobs=[*operations.jobs, archive_job],
        resources=build_resources(settings),
        # A run carries many disputes; one process for all its steps avoids paying imports per step.
        executor=in_process_executor,
    )


@definitions
def defs() -> Definitions:
    """What Dagster loads (workspace.yaml, `dg`, the gRPC code server): the definitions built from
    this process's settings, once, when the code location loads (not when the module is imported)."""
    return build_definitions(get_settings())
