"""Issue 5: the deployable configuration loads: the production dagster.yaml as a real instance on
PostgreSQL, the ECS launcher's config against dagster-aws' schema, the Kubernetes files as YAML."""

from __future__ import annotations

import shutil

import pytest
import yaml

from dispute_platform.settings import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


@pytest.mark.integration
def test_production_dagster_yaml_makes_a_working_instance(pg_url, tmp_path, monkeypatch):
    from dagster import DagsterInstance
    from dagster._core.run_coordinator import QueuedRunCoordinator

    from dispute_platform.store.db import sqlalchemy_url

    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", sqlalchemy_url(pg_url))
    with DagsterInstance.get() as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_monitoring_enabled
        config = instance.get_concurrency_config()
        assert config.run_queue_config.max_concurrent_runs == 10
        assert {"key": "dispute_platform/step", "value": "reembed", "limit": 1} in config.run_queue_config.tag_concurrency_limits
        assert config.pool_config.default_pool_limit == 1
        assert any(type(h).__name__ == "WorkflowLogHandler" for h in instance.get_handlers())
        # the pools deploy/pools.sh sets
        instance.event_log_storage.set_concurrency_slots("llm", 8)
        instance.event_log_storage.set_concurrency_slots("chroma_writer", 1)
        limits = {p.name: p.limit for p in instance.event_log_storage.get_pool_limits()}
        assert limits["llm"] == 8 and limits["chroma_writer"] == 1


def test_ecs_launcher_config_matches_dagster_aws_schema():
    from dagster._config import process_config
    from dagster_aws.ecs import EcsRunLauncher
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    config = yaml.safe_load((DEPLOY / "ecs" / "dagster.yaml").read_text())
    assert config["run_launcher"]["class"] == "EcsRunLauncher"
    launcher = process_config(EcsRunLauncher.config_type(), config["run_launcher"]["config"])
    assert launcher.success, launcher.errors
    logs = process_config(S3ComputeLogManager.config_type(), config["compute_logs"]["config"])
    assert logs.success, logs.errors
    import json

    task = json.loads((DEPLOY / "ecs" / "task-definition.json").read_text())
    assert task["family"] == config["run_launcher"]["config"]["task_definition"]
    assert task["containerDefinitions"][0]["name"] == config["run_launcher"]["config"]["container_name"]


def test_kubernetes_and_chroma_files_parse_and_share_the_environment():
    values = yaml.safe_load((DEPLOY / "k8s" / "values.yaml").read_text())
    env = {"name": "dispute-platform-env"}
    secrets = {"name": "dispute-platform-secrets"}
    user_code = values["dagster-user-deployments"]["deployments"][0]
    for part in (
        user_code,
        values["dagsterWebserver"],
        values["dagsterDaemon"],
        values["runLauncher"]["config"]["k8sRunLauncher"],
    ):
        assert env in part["envConfigMaps"] and secrets in part["envSecrets"]
    assert user_code["dagsterApiGrpcArgs"] == ["-m", "dispute_platform.definitions"]
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "platform-env.yaml").read_text()))
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    assert config_map["data"]["CHROMA_HOST"].startswith("chroma.") and config_map["data"]["CHROMA_PORT"] == "8000"
    chroma = list(yaml.safe_load_all((DEPLOY / "k8s" / "chroma.yaml").read_text()))
    assert {d["kind"] for d in chroma} == {"StatefulSet", "Service"}
    compose = yaml.safe_load((DEPLOY / "chroma" / "docker-compose.yml").read_text())
    assert "8000" in compose["services"]["chroma"]["ports"][0]


def test_deployments_carry_the_dagster_settings_the_cli_publishes():
    import json

    from dispute_platform.local import DAGSTER_ENV_DEFAULTS

    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "platform-env.yaml").read_text()))
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    task = json.loads((DEPLOY / "ecs" / "task-definition.json").read_text())
    ecs = {e["name"]: e["value"] for e in task["containerDefinitions"][0]["environment"]}
    for name, value in DAGSTER_ENV_DEFAULTS.items():
        assert config_map.get(name) == value and ecs.get(name) == value, name
