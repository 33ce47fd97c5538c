"""Issue 5: `dispute-platform doctor` on a healthy local setup and with PostgreSQL unreachable."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dispute_platform.commands.doctor import FAIL, OK, describe_url, run_checks
from dispute_platform.settings import get_settings

pytestmark = pytest.mark.integration

VENDOR_AND_KEYS = (
    "OPENAI_API_KEY", "LLM_PROVIDER", "GMAIL_EMAIL", "SMTP_HOST", "SALESFORCE_INSTANCE_URL", "CRM_BASE_URL", "ZUORA_BASE_URL",
    "BILLING_BASE_URL", "STRIPE_SECRET_KEY", "PAYMENT_SECRET_KEY", "CHROMA_HOST", "EMBEDDING_MODEL", "SANDBOX_DATA",
)  # fmt: skip


@pytest.fixture
def local_env(monkeypatch, tmp_path, pg_url, sqs_endpoint, queues):
    """A healthy local configuration: the test database, the moto queues, folders under tmp_path."""
    from dispute_platform.store.db import sqlalchemy_url

    for name in VENDOR_AND_KEYS:
        monkeypatch.delenv(name, raising=False)
    env = {
        "DATABASE_URL": pg_url,
        "DAGSTER_POSTGRES_URL": sqlalchemy_url(pg_url),
        "SQS_ENDPOINT_URL": sqs_endpoint,
        "DISPUTE_EVENTS_QUEUE_URL": queues["events"],
        "HUMAN_REVIEW_NOTIFICATIONS_QUEUE_URL": queues["review"],
        "DISPUTE_EVENTS_DLQ_URL": queues["dlq"],
        "DISPUTE_PLATFORM_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "home" / "dagster"),
        "CHROMA_DB_PATH": str(tmp_path / "chroma"),
        "LOG_DIR": str(tmp_path / "logs"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def test_doctor_passes_on_a_healthy_local_setup(db, local_env):
    from dispute_platform.cli import main

    result = CliRunner().invoke(main, ["doctor"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "all connections usable" in result.output
    checks = {c.name: c for c in run_checks(get_settings(), embedded_db=False, local_sqs=False)}
    assert {
        "PostgreSQL",
        "SQS",
        "embedding model",
        "Chroma",
        "vectors vs model",
        "e-mail",
        "LLM",
        "connectors",
        "Dagster instance",
        "logs",
    } <= set(checks)
    assert not [c for c in checks.values() if c.status == FAIL]
    for name in ("PostgreSQL", "SQS", "embedding model", "e-mail", "LLM", "connectors", "logs"):
        assert checks[name].status == OK, checks[name]
    assert "migrations applied" in checks["PostgreSQL"].detail
    assert "all-MiniLM-L6-v2@" in checks["vectors vs model"].detail


def test_doctor_fails_readably_when_postgres_is_unreachable(local_env, monkeypatch):
    from dispute_platform.cli import main

    monkeypatch.setenv("DATABASE_URL", "postgresql://dispute_app:not-printed-pw@127.0.0.1:1/disputes")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql+psycopg2://dispute_app:not-printed-pw@127.0.0.1:1/dagster")
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "PostgreSQL" in text and "fail" in text and "127.0.0.1:1/disputes" in text
    assert "start PostgreSQL or fix DATABASE_URL" in " ".join(text.replace("│", " ").split())
    assert "not-printed-pw" not in result.output
    checks = {c.name: c for c in run_checks(get_settings(), embedded_db=False, local_sqs=False)}
    assert checks["PostgreSQL"].status == FAIL and "refused" in checks["PostgreSQL"].detail.lower()
    assert checks["SQS"].status == OK  # the other connections are still checked


def test_doctor_flags_a_half_configured_connector_and_a_missing_key(local_env, monkeypatch):
    monkeypatch.setenv("SALESFORCE_INSTANCE_URL", "https://example.my.salesforce.com")
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    get_settings.cache_clear()
    checks = {c.name: c for c in run_checks(get_settings(), embedded_db=False, local_sqs=False)}
    assert checks["connectors"].status == FAIL
    assert checks["LLM"].status == FAIL and "OPENAI_API_KEY" in checks["LLM"].fix
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-doctorNEVERshown0123456789")
    get_settings.cache_clear()
    llm = next(c for c in run_checks(get_settings(), embedded_db=False, local_sqs=False) if c.name == "LLM")
    assert llm.status == OK and "not shown" in llm.detail and "doctorNEVERshown" not in llm.detail


def test_describe_url_never_shows_the_password():
    assert describe_url("postgresql://u:secret@db.example:6543/app") == "db.example:6543/app"
    assert describe_url("postgresql+psycopg2://u:secret@db/app") == "db:5432/app"


def test_chroma_check_counts_collections_and_finds_vectors_of_another_model(db, local_env):
    from dispute_platform.commands.doctor import WARN, check_chroma
    from dispute_platform.resources.vectors import VectorStoreResource
    from dispute_platform.workflow.reembed import current_model_identity

    settings = get_settings()
    identity = current_model_identity(None)
    vectors = VectorStoreResource(chroma_path=str(settings.chroma_path))
    coll = vectors.collection(vectors.resolutions_collection)
    vectors.collection(vectors.policies_collection).upsert(
        ids=["POL-001 §1"], documents=["policy"], embeddings=[[0.1] * 384], metadatas=[{"model": identity}]
    )
    coll.upsert(
        ids=["A", "B", "C"],
        documents=["a", "b", "c"],
        embeddings=[[0.1] * 384, [0.2] * 384, [0.3] * 384],
        metadatas=[{"model": identity}, {"model": identity}, {"model": "old-model@0000"}],
    )
    chroma, vs_model = check_chroma(settings, local_env["DATABASE_URL"])
    assert chroma.status == OK and "company_policies 1" in chroma.detail and "dispute_resolutions 3" in chroma.detail
    assert vs_model.status == WARN and "another model: 1" in vs_model.detail and "reembed --stale-only" in vs_model.fix
