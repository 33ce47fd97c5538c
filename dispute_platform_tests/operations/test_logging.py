"""Issue 5: workflow.log: JSON lines with case id, run id, step and cost; rotation; no secret and no
unmasked card number ever reaches the file, from platform loggers or from Dagster's run logs."""

import json
import logging
import multiprocessing
from pathlib import Path

import pytest
from dagster import AssetExecutionContext, MaterializeResult, StaticPartitionsDefinition, asset, instance_for_test, materialize

from dispute_platform.domain.masking import contains_card_number
from dispute_platform.logs import (
    LOG_FILE,
    PLATFORM_LOGGER,
    WorkflowLogHandler,
    dagster_python_logs_config,
    install_workflow_log,
    iter_lines,
    log_context,
    redact,
    register_secret,
)

PLANTED = {
    "OPENAI_API_KEY": "sk-proj-PLANTEDopenAIkey0123456789abcdefXYZ",
    "DATABASE_URL": "postgresql://dispute_app:Pl4nted-DB-pa55word@db.internal:5432/disputes",
    "GMAIL_APP_PASSWORD": "plnt abcd efgh ijkl",
    "STRIPE_SECRET_KEY": "sk_live_PLANTEDstripe0123456789",
    "ZUORA_CLIENT_SECRET": "zuora-planted-secret-42",
}
REVIEWER_TOKEN = "rvw_PLANTED_token_Zx81kq0pLmN4"
SECRET_VALUES = [*PLANTED.values(), "Pl4nted-DB-pa55word", REVIEWER_TOKEN]
CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "4012888888881881"]


@pytest.fixture
def planted(monkeypatch):
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    register_secret(REVIEWER_TOKEN)


@pytest.fixture
def platform_log(tmp_path):
    """Platform loggers to a workflow.log in tmp_path for the test; the previous handlers after."""
    logger = logging.getLogger(PLATFORM_LOGGER)
    before = list(logger.handlers)
    handler = install_workflow_log(tmp_path)
    yield handler
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in before:
        logger.addHandler(h)


def _lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in iter_lines(folder)]


def test_redact_removes_secrets_and_masks_pii(planted):
    text = (
        f"key={PLANTED['OPENAI_API_KEY']} url={PLANTED['DATABASE_URL']} smtp {PLANTED['GMAIL_APP_PASSWORD']} "
        f"Authorization: Bearer {REVIEWER_TOKEN} stripe {PLANTED['STRIPE_SECRET_KEY']} card {CARDS[0]} "
        "mail jane.doe@example.com phone +1 (555) 123-4567 other sk-abcdefghijklmnopqrstuvwx password: hunter22 "
        "redis://user:s3cr3t@cache:6379/0"
    )
    out = redact(text)
    for secret in [*SECRET_VALUES, "sk-abcdefghijklmnopqrstuvwx", "hunter22", "s3cr3t", "jane.doe@example.com"]:
        assert secret not in out, secret
    assert not contains_card_number(out)
    assert "[CARD ****1111]" in out and "[EMAIL]" in out and "[PHONE]" in out
    assert "postgresql://dispute_app:[REDACTED]@db.internal:5432/disputes" in out
    # Ordinary figures survive: token counts, costs, dates, case ids.
    plain = (
        "CASE-1001 input_tokens=1834 output_tokens=212 cost_usd=0.00040 on 2026-03-01 amount 120.00 "
        "run 30747123-4312-4a3b-9c28-e13dda1b0000"
    )
    assert redact(plain) == plain
    assert (
        redact("weird \x000\x00 text 12345678-1234-4234-8234-123456789012")
        == "weird \\u00000\\u0000 text 12345678-1234-4234-8234-123456789012"
    )


def test_rotation_keeps_five_files_of_bounded_size(tmp_path):
    handler = WorkflowLogHandler(tmp_path, max_bytes=4000, backup_count=5)
    logger = logging.getLogger("dispute_platform_tests.rotation")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for i in range(400):
            logger.info("line %05d %s", i, "x" * 60, extra={"case_id": f"CASE-{i:04d}"})
    finally:
        logger.removeHandler(handler)
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(LOG_FILE) and not p.name.endswith(".lock"))
    assert files == [LOG_FILE, *(f"{LOG_FILE}.{i}" for i in range(1, 6))]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 4000
    lines = _lines(tmp_path)
    numbers = [int(line["message"].split()[1]) for line in lines]
    assert numbers == sorted(numbers) and numbers[-1] == 399  # oldest backup first, newest last
    assert all(line["case_id"] == f"CASE-{n:04d}" for line, n in zip(lines, numbers, strict=True))


def _writer(folder: str, worker: int) -> None:
    handler = WorkflowLogHandler(folder, max_bytes=3000, backup_count=50)
    logger = logging.getLogger(f"dispute_platform_tests.mp{worker}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    for i in range(150):
        logger.info("worker %d line %d %s", worker, i, "y" * 40)


def test_processes_share_the_file_and_its_rotation(tmp_path):
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_writer, args=(str(tmp_path), w)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(30)
        assert p.exitcode == 0
    lines = _lines(tmp_path)  # every line parses: no torn or interleaved writes
    assert len(lines) == 450
    assert {(m["message"].split()[1], m["message"].split()[3]) for m in lines} == {
        (str(w), str(i)) for w in range(3) for i in range(150)
    }


cases = StaticPartitionsDefinition(["CASE-LOG-1", "CASE-LOG-2"])


@asset(partitions_def=cases)
def handles_secrets(context: AssetExecutionContext) -> MaterializeResult:
    platform = logging.getLogger("dispute_platform.workflow.test_secrets")
    key = context.partition_key
    with log_context(case_id=key, step="handles_secrets"):
        platform.info("calling the model with key %s for card %s", PLANTED["OPENAI_API_KEY"], CARDS[0])
        platform.warning("db %s, smtp password %s", PLANTED["DATABASE_URL"], PLANTED["GMAIL_APP_PASSWORD"])
        try:
            raise RuntimeError(f"Stripe refused {PLANTED['STRIPE_SECRET_KEY']} for card {CARDS[1]}")
        except RuntimeError:
            platform.exception("refund failed")
    context.log.info(
        f"reviewer header Authorization: Bearer {REVIEWER_TOKEN}; card {CARDS[2]}; zuora {PLANTED['ZUORA_CLIENT_SECRET']}"
    )
    context.log.info(f"customer wrote: my card is {CARDS[3]} and my e-mail jane@example.com")
    return MaterializeResult(
        metadata={"cost_usd": 0.00042, "input_tokens": 1800, "output_tokens": 120, "status": "pending_review"}
    )


@asset(partitions_def=cases, deps=[handles_secrets])
def fails_with_a_secret(context: AssetExecutionContext) -> None:
    raise ValueError(f"connection to {PLANTED['DATABASE_URL']} refused (key {PLANTED['OPENAI_API_KEY']}, card {CARDS[0]})")


def test_no_secret_or_card_reaches_the_log_after_a_run(planted, platform_log, tmp_path, monkeypatch):
    from dispute_platform.settings import get_settings

    # Dagster's run logs reach the file through the instance's python_logs (what dagster.yaml says).
    monkeypatch.setenv("LOG_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        with instance_for_test(overrides={"python_logs": dagster_python_logs_config()}) as instance:
            result = materialize(
                [handles_secrets, fails_with_a_secret], instance=instance, partition_key="CASE-LOG-1", raise_on_error=False
            )
    finally:
        get_settings.cache_clear()
    assert not result.success  # the second asset failed, with secrets in its error
    text = "\n".join(iter_lines(tmp_path))
    for secret in SECRET_VALUES:
        assert secret not in text, secret
    for card in CARDS:
        assert card not in text and card.replace(" ", "").replace("-", "") not in text
    assert not contains_card_number(text)
    assert "jane@example.com" not in text

    lines = _lines(tmp_path)
    run_id = result.run_id
    platform = [line for line in lines if line["logger"].startswith("dispute_platform.workflow.test_secrets")]
    assert len(platform) == 3  # written once, although Dagster may capture them too
    assert all(
        line["case_id"] == "CASE-LOG-1" and line["run_id"] == run_id and line["step"] == "handles_secrets" for line in platform
    )
    assert "[CARD ****1111]" in platform[0]["message"]
    assert "exception" in platform[2] and "RuntimeError" in platform[2]["exception"]
    dagster_lines = [line for line in lines if line.get("run_id") == run_id and not line["logger"].startswith("dispute_platform")]
    assert any("[CARD ****0005]" in line["message"] for line in dagster_lines)
    materialized = [line for line in dagster_lines if line.get("event") == "ASSET_MATERIALIZATION"]
    assert materialized and materialized[0]["case_id"] == "CASE-LOG-1" and materialized[0]["cost_usd"] == 0.00042
    assert all(line.get("step") for line in dagster_lines if line.get("event") in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"))
    failure = [line for line in dagster_lines if line.get("event") == "STEP_FAILURE"]
    assert failure and "ValueError" in failure[0]["exception"] and "[REDACTED]" in failure[0]["exception"]


def test_local_and_deploy_instances_send_run_logs_to_the_file():
    import yaml

    from dispute_platform.local import dagster_yaml
    from dispute_platform.settings import REPO_ROOT

    assert dagster_yaml()["python_logs"] == dagster_python_logs_config()
    deployed = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    handler = deployed["python_logs"]["dagster_handler_config"]["handlers"]["workflow_log"]
    assert handler["class"] == "dispute_platform.logs.WorkflowLogHandler"


def test_a_dagster_yaml_written_before_the_move_still_finds_the_handler():
    import importlib

    old = importlib.import_module("dispute_platform.workflow_log")
    assert old.WorkflowLogHandler is WorkflowLogHandler
    assert old.redact is redact
