"""Configuration from the environment: one place that names every variable and its default.

The README's configuration table is generated from this class (`dispute-platform config`), so
the two cannot drift apart. Secrets are `SecretStr`: they print as '**********'.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from dispute_platform.domain import defaults

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore", populate_by_name=True)

    # --- local state -----------------------------------------------------------------------
    dispute_platform_home: Path = Field(
        default=Path(".dispute_platform"),
        description="Folder for local state: embedded Postgres data, Chroma, e-mail outbox, Dagster home.",
    )
    dagster_home: Path | None = Field(
        default=None,
        description="Dagster's home (dagster.yaml, run logs). Unset: DISPUTE_PLATFORM_HOME/dagster, made by the CLI.",
    )
    # --- PostgreSQL --------------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None,
        description="Platform PostgreSQL (postgresql://user:pass@host:5432/db). Unset: an embedded "
        "PostgreSQL 16 (pgserver) under DISPUTE_PLATFORM_HOME/pgdata.",
    )
    # --- SQS ---------------------------------------------------------------------------------
    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
        description="AWS region of the queues.",
    )
    sqs_endpoint_url: str | None = Field(
        default=None,
        description="SQS endpoint override (a local SQS-compatible server). Unset with no queue URLs: the CLI starts one.",
    )
    dispute_events_queue_url: str | None = Field(default=None, description="Queue the dispute events arrive on.")
    human_review_notifications_queue_url: str | None = Field(
        default=None, description="Queue that receives a message per proposal awaiting review."
    )
    dispute_events_dlq_url: str | None = Field(
        default=None, description="Dead-letter queue for rejected event bodies (optional; rows in rejected_events either way)."
    )
    local_sqs_port: int = Field(default=9324, description="Port of the local SQS-compatible endpoint the CLI starts.")
    sqs_max_messages_per_tick: int = Field(default=500, ge=10, description="Most messages one sensor tick receives.")
    sqs_tick_budget_seconds: float = Field(
        default=20.0, gt=0, le=50, description="A tick stops receiving after this long (Dagster's limit is 60 s)."
    )
    sqs_receivers: int = Field(
        default=2, ge=1, le=10, description="Receive calls a sensor tick keeps in flight while it stores what arrived."
    )
    sqs_hand_over: bool = Field(
        default=False,
        description="End a sensor tick once DISPUTES_PER_RUN new events are stored, so that their run is created at once. "
        "Off: creating a run costs more than receiving (see the README's figures), and the next run then waits a tick.",
    )
    sqs_sensor_interval_seconds: int = Field(default=10, ge=1, description="Seconds between SQS sensor ticks.")
    review_sensor_interval_seconds: int = Field(default=10, ge=1, description="Seconds between review sensor ticks.")
    step_retry_delay_seconds: float = Field(
        default=5.0, ge=0, description="First delay of a step retry (doubling, 3 retries) after a transient failure."
    )
    disputes_per_run: int = Field(
        default=250,
        ge=1,
        description="Most new disputes one intake run carries (a tick's new disputes are split into even runs).",
    )
    review_batch_size: int = Field(
        default=250,
        ge=1,
        description="Most decided disputes one review run carries (review, execution, embedding). A tick's decisions that "
        "are neighbours in the partition set share a run; 1: a run per decision.",
    )
    review_range_max_gap: int = Field(
        default=5,
        ge=0,
        description="Most undecided disputes between two decided ones that still share a review run (a range run: the "
        "ones between are left untouched, and their metadata in that run says so). 0: only exact neighbours share a run.",
    )
    enrich_disputes_in_flight: int = Field(
        default=8, ge=1, le=64, description="Disputes enriched_context fetches at the same time in a run."
    )
    enrich_fetches_in_flight: int = Field(
        default=24, ge=1, le=128, description="Source-system calls (CRM, billing, payments) in flight at once in a run."
    )
    proposals_in_flight: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Proposals made at the same time in a run (paid providers; the rules engine makes one at a time).",
    )
    executions_in_flight: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Approved disputes executed_resolution carries out at the same time in a review run (each under its "
        "own guarded transitions; 1: one at a time).",
    )
    postgres_pool_size: int | None = Field(
        default=None,
        ge=2,
        description="Most Postgres connections one process holds. Unset: ENRICH_DISPUTES_IN_FLIGHT + ENRICH_FETCHES_IN_FLIGHT + 4, "
        "so the busiest step never waits for a connection; a thread that finds the pool busy waits, it does not fail.",
    )
    # --- source systems ----------------------------------------------------------------------
    sandbox_data: Path | None = Field(
        default=None, description="World file of the sandbox CRM, billing and payment providers. Unset: the bundled world."
    )
    # --- proposals ---------------------------------------------------------------------------
    llm_provider: str | None = Field(
        default=None, description="precedent | openai. Unset: openai when OPENAI_API_KEY is set, else precedent."
    )
    openai_api_key: SecretStr | None = Field(default=None, description="OpenAI API key; turns on the openai provider.")
    openai_model: str = Field(default="gpt-4o-mini", description="Model for proposals.")
    openai_base_url: str | None = Field(default=None, description="Any OpenAI-compatible server.")
    openai_timeout_seconds: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    openai_max_retries: int = Field(default=3, ge=0, description="Retries on 429, 5xx and timeouts (with backoff).")
    llm_prices: str | None = Field(
        default=None,
        description='Price table override, JSON: {"model": {"input_per_1m": 0.15, "output_per_1m": 0.6, "cached_input_per_1m": 0.075}}.',
    )
    max_input_tokens: int = Field(
        default=defaults.MAX_INPUT_TOKENS, ge=200, description="Cap on prompt tokens per dispute (o200k_base)."
    )
    max_output_tokens: int = Field(default=defaults.MAX_OUTPUT_TOKENS, ge=16, description="Cap on completion tokens per dispute.")
    max_cost_per_dispute_usd: Decimal = Field(
        default=defaults.MAX_COST_PER_DISPUTE_USD, ge=0, description="Cap on LLM cost per dispute."
    )
    prompt_similar_cases_tokens: int = Field(
        default=defaults.SIMILAR_CASES_TOKENS, ge=0, description="Token budget of the 3 similar past cases in a prompt."
    )
    prompt_policies_tokens: int = Field(
        default=defaults.POLICIES_TOKENS, ge=0, description="Token budget of the 3 policy sections in a prompt."
    )
    prompt_charges_tokens: int = Field(
        default=defaults.CHARGES_TOKENS, ge=0, description="Token budget of the 5 most relevant charges in a prompt."
    )
    prompt_description_tokens: int | None = Field(
        default=None, ge=0, description="Cap on the customer's description. Unset: whatever the input cap leaves."
    )
    escalation_threshold_usd: Decimal = Field(
        default=defaults.ESCALATION_THRESHOLD_USD,
        ge=0,
        description="Proposals above this USD value are escalated; decisions above it need two reviewers.",
    )
    fx_rates_to_usd: str | None = Field(
        default=None,
        description='USD per unit of each currency, JSON ({"USD": 1, "EUR": "1.08"}), for the thresholds. Unset: a small '
        "built-in table (USD EUR GBP CAD AUD CHF JPY KWD). A currency without a rate always needs two reviewers.",
    )
    auto_approve_max_usd: Decimal = Field(
        default=defaults.AUTO_APPROVE_MAX_USD,
        ge=0,
        description="Policy auto-approval lane: proposals decided by the policy rules, unflagged, within every cap and at "
        "or below this USD value are executed without a reviewer (as `auto-policy`). 0: the lane is off.",
    )
    auto_approve_min_confidence: float = Field(
        default=defaults.AUTO_APPROVE_MIN_CONFIDENCE,
        ge=0,
        le=1,
        description="Lowest calibrated confidence the auto-approval lane accepts.",
    )
    auto_approve_sample_rate: float = Field(
        default=defaults.AUTO_APPROVE_SAMPLE_RATE,
        ge=0,
        le=1,
        description="Share of auto-approvals sampled for a reviewer's look after the fact.",
    )
    decision_ticket_ttl_seconds: int = Field(
        default=defaults.DECISION_TICKET_TTL_SECONDS,
        ge=30,
        le=86400,
        description="How long a launchpad decision ticket stays valid (single use).",
    )
    # --- knowledge ---------------------------------------------------------------------------
    chroma_db_path: Path | None = Field(default=None, description="Chroma folder. Unset: DISPUTE_PLATFORM_HOME/chroma.")
    chroma_host: str | None = Field(default=None, description="Chroma server host; when set, used instead of the folder.")
    chroma_port: int = Field(default=8000, description="Chroma server port.")
    embedding_model: str | None = Field(
        default=None, description="sentence-transformers model name or path. Unset: the packaged all-MiniLM-L6-v2."
    )
    embedding_runtime: Literal["onnx", "torch"] = Field(
        default="onnx",
        description="onnx: the model's own weights exported once to ONNX Runtime (same vectors and identity, no torch "
        "import); torch: sentence-transformers. A model the export cannot take stays on torch.",
    )
    embedding_cache_dir: Path | None = Field(
        default=None,
        description="Folder of the one-time ONNX export. Unset: $XDG_CACHE_HOME/dispute_platform, else ~/.cache/dispute_platform.",
    )
    policies_dir: Path = Field(default=REPO_ROOT / "policies", description="Folder of policy .docx files.")
    # --- people ------------------------------------------------------------------------------
    approver_email: str = Field(default="approvers@brightwave.example", description="Where review requests go.")
    gmail_email: str | None = Field(default=None, description="Sender account for SMTP (e.g. a Gmail address).")
    gmail_app_password: SecretStr | None = Field(default=None, description="SMTP password (a Gmail app password).")
    smtp_host: str | None = Field(default=None, description="SMTP server. Unset with GMAIL_EMAIL set: smtp.gmail.com.")
    smtp_port: int = Field(default=587, description="SMTP port (STARTTLS).")
    email_outbox: Path | None = Field(
        default=None, description="Folder for .eml files when no SMTP is set. Unset: DISPUTE_PLATFORM_HOME/outbox."
    )
    dagster_ui_url: str = Field(default="http://localhost:3000", description="Base URL of the Dagster UI, for links in e-mails.")
    review_sla_hours: float = Field(default=48.0, gt=0, description="Pending reviews older than this are escalated.")
    api_host: str = Field(default="127.0.0.1", description="Decision endpoint bind address.")
    api_port: int = Field(default=8003, description="Decision endpoint port.")
    desk_session_hours: float = Field(
        default=8.0, gt=0, le=24 * 7, description="A review desk sign-in lasts this long (then the reviewer signs in again)."
    )
    desk_cookie_secure: bool = Field(
        default=True,
        description="The desk's session cookie is Secure (sent over HTTPS and to localhost only). Set false only behind "
        "plain HTTP on a trusted network.",
    )
    log_dir: Path = Field(default=Path("logs"), description="Folder of workflow.log (JSON lines, rotated at 10 MB x 5).")
    # --- operations --------------------------------------------------------------------------
    log_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="workflow.log rotates at this size.")
    log_backup_count: int = Field(default=5, ge=1, description="Rotated workflow.log files kept (workflow.log.1 ...).")
    reembed_buckets_per_run: int = Field(
        default=16, ge=1, le=64, description="Hash buckets (of 64) one re-embedding backfill run carries."
    )
    reembed_cron: str = Field(default="0 3 * * 0", description="When the weekly re-embedding of the past cases runs (cron, UTC).")
    reembed_sensor_interval_seconds: int = Field(
        default=60, ge=10, description="Seconds between checks for vectors made by another embedding model."
    )
    cost_report_cron: str = Field(default="0 6 * * *", description="When the cost report is rebuilt (cron, UTC).")
    cost_report_days: int = Field(default=30, ge=0, description="Days the scheduled cost report covers (0: all).")
    partition_retention_days: int = Field(
        default=30,
        ge=0,
        description="A settled dispute (executed, rejected, invalid, completed) leaves Dagster's partition set this many "
        "days after it settled (Postgres keeps every row). Binds on a quiet platform; at volume the count below binds.",
    )
    partition_retention_max: int = Field(
        default=9_000,
        ge=0,
        description="At most this many settled disputes keep their partition (the newest); older ones are archived "
        "even inside the window. At 10,000 disputes a day, settled within 1-2 days: ~15,000 in flight + 9,000 settled "
        "+ an hour of arrivals between passes = ~24,400 keys, under the 25,000 target (Dagster advises <= 100,000).",
    )
    archive_batch_size: int = Field(
        default=1_000, ge=1, description="Disputes one archive transaction marks and whose keys one batch deletes."
    )
    archive_cron: str = Field(default="17 * * * *", description="When the archive pass runs (cron, UTC; hourly).")

    @property
    def home(self) -> Path:
        return self.dispute_platform_home.resolve()

    @property
    def chroma_path(self) -> Path:
        return (self.chroma_db_path or self.home / "chroma").resolve()

    @property
    def outbox(self) -> Path:
        return (self.email_outbox or self.home / "outbox").resolve()

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def dagster_dir(self) -> Path:
        return (self.dagster_home or self.home / "dagster").resolve()

    @property
    def postgres_connections(self) -> int:
        """Connections per process: the threads of the busiest step (enriched_context), plus the
        step's own thread, the checks and the sensor's work."""
        return self.postgres_pool_size or self.enrich_disputes_in_flight + self.enrich_fetches_in_flight + 4

    @property
    def resolved_llm_provider(self) -> str:
        if self.llm_provider:
            return self.llm_provider
        return "openai" if self.openai_api_key else "precedent"

    @property
    def usd_rates(self) -> dict[str, Decimal]:
        from dispute_platform.domain.money import parse_rates

        return parse_rates(self.fx_rates_to_usd)

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host or self.gmail_email)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """This process's settings: the ones a command installed with `use_settings` (the CLI, once
    it has started what was not configured), else read from the environment once."""
    return _installed[-1] if _installed else Settings()


_installed: list[Settings] = []


def use_settings(settings: Settings | None) -> None:
    """Make `settings` what `get_settings()` returns in this process (None: the environment's again)."""
    _installed[:] = [] if settings is None else [settings]
    get_settings.cache_clear()
