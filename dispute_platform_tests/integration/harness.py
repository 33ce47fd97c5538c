"""Real resources for integration tests: the test Postgres database, the moto SQS endpoint, a
Chroma folder per test, the packaged embedding model, the sandbox world, an .eml outbox."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, materialize

from dispute_platform.assets.knowledge import historical_resolutions
from dispute_platform.domain.world import BUNDLED_WORLD
from dispute_platform.resources.email import OutboxEmail
from dispute_platform.resources.limits import Limits
from dispute_platform.resources.llm import PrecedentProposer
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.providers import SandboxBilling, SandboxCRM, SandboxPayments
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform_tests.definitions import (
    ai_proposal,
    company_policies,
    enriched_context,
    executed_resolution,
    raw_case,
    resolution_embedding,
    review_decision,
)

INTAKE = [raw_case, enriched_context, ai_proposal]  # the cap checks are declared on ai_proposal
REVIEW = [review_decision, executed_resolution, resolution_embedding]
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def sample_events() -> list[dict]:
    return json.loads(BUNDLED_WORLD.read_text())["sample_events"]


def sample_event(case_id: str) -> dict:
    return next(e for e in sample_events() if e["case_id"] == case_id)


def store_events(db, events: list[dict]) -> None:
    """Store events as the sensor would (for tests that start after intake)."""
    from dispute_platform.store import repo
    from dispute_platform.workflow.intake import parse_body

    accepted = [repo.AcceptedEvent(parse_body(json.dumps(e)), e, None, None) for e in events]
    db.transact(lambda cur: repo.record_accepted(cur, accepted))


def build_test_resources(
    pg_url: str, sqs: Any, tmp_path: Path, *, proposer: Any = None, limits: Limits | None = None, world: Path | None = None
) -> dict[str, Any]:
    postgres = PostgresResource(database_url=pg_url)
    sandbox = {"sandbox_data": str(world) if world else None, "postgres": postgres}
    return {
        "postgres": postgres,
        "sqs": sqs,
        "crm": SandboxCRM(**sandbox),
        "billing": SandboxBilling(**sandbox),
        "payments": SandboxPayments(**sandbox),
        # tmp_path / "chroma" is the per-test copy of the seeded folder when the test asks for
        # the `chroma_dir` fixture, an empty folder otherwise.
        "vectors": VectorStoreResource(chroma_path=str(tmp_path / "chroma")),
        "proposer": proposer or PrecedentProposer(),
        "limits": limits or Limits(),
        "email": OutboxEmail(outbox_dir=str(tmp_path / "outbox")),
    }


def load_knowledge(instance: DagsterInstance, resources: dict[str, Any]) -> None:
    result = materialize([company_policies, historical_resolutions], instance=instance, resources=resources)
    assert result.success


def run_intake(instance: DagsterInstance, resources: dict[str, Any], keys: list[str]):
    """Materialise the intake assets over `keys` in one run, as the sensor's run would."""
    instance.add_dynamic_partitions("disputes", keys)
    return materialize(
        INTAKE,
        instance=instance,
        resources=resources,
        tags={RANGE_START: keys[0], RANGE_END: keys[-1]},
        raise_on_error=False,
    )


def run_review(instance: DagsterInstance, resources: dict[str, Any], key: str, run_config: dict | None = None):
    return materialize(
        REVIEW, instance=instance, resources=resources, partition_key=key, run_config=run_config, raise_on_error=False
    )


def metadata_for(result, asset: str, key: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        if mat.asset_key.to_user_string() == asset and mat.partition == key:
            return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of {asset} for {key}")


def reviewer(db, name: str, token: str | None = None):
    """The reviewer record called `name` (created with `token`, or a random one, the first time)."""
    import secrets

    from dispute_platform.store import reviewers as store

    def get_or_add(cur):
        row = store.reviewer_by_name(cur, name)
        if row is not None:
            return store.Reviewer(row["id"], row["name"], row["email"], row["kind"])
        return store.add_reviewer(cur, name, token or secrets.token_urlsafe(16))

    return db.transact(get_or_add)


def decide(db, case_id: str, decision: str = "approved", who: str = "alice", *, version: int | None = 1, modified=None,
           comments: str = "", limits: Limits | None = None, source: str = "api"):  # fmt: skip
    """Record a decision as the reviewer `who` would through the endpoint (same rules, same path)."""
    from dispute_platform.workflow.review import record_decision

    return record_decision(
        db, case_id=case_id, decision=decision, reviewer=reviewer(db, who), comments=comments, proposal_version=version,
        modified=modified, source=source, limits=limits or Limits(),
    )  # fmt: skip


def refunds(db) -> list[dict]:
    return db.fetch_all("SELECT * FROM sandbox_refunds ORDER BY created_at")


def money(value: str) -> Decimal:
    return Decimal(value)


# Sample values for the endpoint's path parameters (a route with another parameter fails loudly).
_PATH_SAMPLES = {"case_id": "CASE-1063", "run_id": "00000000-0000-0000-0000-000000000000"}
_OPEN_ROUTES = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def protected_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route of the decision endpoint that must demand a token, read from
    the app itself so that a route added later is covered too."""
    from fastapi.routing import APIRoute

    routes = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or route.path in _OPEN_ROUTES:
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: _PATH_SAMPLES[m.group(1)], route.path)
        routes += [(method.lower(), path) for method in sorted(route.methods)]
    assert routes, "the app has no protected routes"
    return routes
