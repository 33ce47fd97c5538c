"""The one Definitions object: assets (with the cap checks declared on ai_proposal), sensors,
schedules and the resources behind them.

This is the composition root: configuration (the environment) chooses each resource's
implementation here, once; nothing below it asks which implementation it got. Secrets are passed
as `EnvVar`s, resolved in the run process and never shown in the UI.
"""

from __future__ import annotations

from typing import Any

from dagster import DefaultScheduleStatus, Definitions, EnvVar, ScheduleDefinition, define_asset_job, in_process_executor

from dispute_platform.assets.disputes import (
    ai_proposal,
    enriched_context,
    executed_resolution,
    raw_case,
    resolution_embedding,
    review_decision,
)
from dispute_platform.assets.knowledge import company_policies, historical_resolutions, proposal_calibration
from dispute_platform.assets.retention import dispute_archive
from dispute_platform.logs import install_workflow_log
from dispute_platform.operations import operations_assets, operations_jobs, operations_schedules, operations_sensors
from dispute_platform.resources.connectors.config import ConnectorSettings, select_providers
from dispute_platform.resources.email import OutboxEmail, SmtpEmail
from dispute_platform.resources.limits import Limits
from dispute_platform.resources.llm import OpenAIProposer, PrecedentProposer
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.sqs import SQSResource
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.sensors import review_decision_sensor, sqs_dispute_sensor
from dispute_platform.settings import Settings, get_settings

LOCAL_EVENTS_QUEUE = "dispute-events"
LOCAL_REVIEW_QUEUE = "human-review-notifications"
LOCAL_DLQ = "dispute-events-dlq"


def _secret(name: str, present: bool) -> Any:
    return EnvVar(name) if present else None


def build_resources(settings: Settings) -> dict[str, Any]:
    postgres = PostgresResource(
        database_url=_secret("DATABASE_URL", settings.database_url is not None), pgdata=str(settings.pgdata)
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


archive_job = define_asset_job(
    "dispute_archive_job",
    selection=[dispute_archive],
    tags={"dispute_platform/step": "archive"},
    description="One archive pass over the disputes partition set.",
)
hourly_archive = ScheduleDefinition(
    name="hourly_dispute_archive",
    job=archive_job,
    cron_schedule=get_settings().archive_cron,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Archives settled disputes past the retention window (PARTITION_RETENTION_DAYS / _MAX) in batches: "
    "keeps Dagster's partition set bounded; never a dispute in flight.",
)

# Platform logs (dispute_platform.*) to LOG_DIR/workflow.log in every process that loads the
# definitions; Dagster's per-run logs reach the same file through dagster.yaml's python_logs.
install_workflow_log()

defs = Definitions(
    assets=[
        raw_case,
        enriched_context,
        ai_proposal,
        review_decision,
        executed_resolution,
        resolution_embedding,
        company_policies,
        historical_resolutions,
        proposal_calibration,
        *operations_assets,
        dispute_archive,
    ],
    sensors=[sqs_dispute_sensor, review_decision_sensor, *operations_sensors],
    schedules=[*operations_schedules, hourly_archive],
    jobs=[*operations_jobs, archive_job],
    resources=build_resources(get_settings()),
    # A run carries many disputes; one process for all its steps avoids paying imports per step.
    executor=in_process_executor,
)
