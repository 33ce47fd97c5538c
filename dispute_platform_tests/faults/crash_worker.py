"""A run process for the crash test: materialises the review assets (review_decision ->
executed_resolution -> resolution_embedding) over the given partitions, as a launched run would,
printing phase markers so the test can SIGKILL it at chosen moments.

Fault injection is opt-in and lives here, in test code: the resources are the platform's own with
a marker (and an optional pause) around the moments that matter:
  CRASH_TX_PAUSE        seconds to wait inside every database transaction, before it commits;
  CRASH_PROVIDER_PAUSE  seconds to wait after the provider refunded or credited, before the
                        platform records it.
Usage: python -m dispute_platform_tests.faults.crash_worker CASE-1 CASE-2 ... (settings in env).
"""

from __future__ import annotations

import os
import sys
import time


def phase(name: str, detail: str = "") -> None:
    print(f"PHASE {time.monotonic():.3f} {name} {detail}".rstrip(), flush=True)


phase("start")

from functools import cached_property  # noqa: E402

from dagster import DagsterInstance, materialize  # noqa: E402

from dispute_platform.resources.postgres import PostgresResource  # noqa: E402
from dispute_platform.resources.providers import SandboxBilling, SandboxPayments  # noqa: E402
from dispute_platform.resources.sqs import SQSResource  # noqa: E402
from dispute_platform.resources.vectors import VectorStoreResource  # noqa: E402
from dispute_platform.store.db import Database  # noqa: E402
from dispute_platform_tests.integration.harness import RANGE_END, RANGE_START, REVIEW, build_test_resources  # noqa: E402

TX_PAUSE = float(os.environ.get("CRASH_TX_PAUSE", "0"))
PROVIDER_PAUSE = float(os.environ.get("CRASH_PROVIDER_PAUSE", "0"))


class MarkedDatabase(Database):
    def transact(self, fn, **kwargs):
        def marked(cur):
            phase("tx_open")
            result = fn(cur)
            if TX_PAUSE:
                time.sleep(TX_PAUSE)  # a kill here leaves the transaction uncommitted
            return result

        result = super().transact(marked, **kwargs)
        phase("tx_done")
        return result


class MarkedPostgres(PostgresResource):
    @cached_property
    def db(self) -> Database:
        return MarkedDatabase(self.url)


def _marked(call, idempotency_key: str):
    phase("provider_call", idempotency_key)
    receipt = call()
    phase("provider_done", f"{idempotency_key} replayed={receipt.replayed}")
    if PROVIDER_PAUSE:
        time.sleep(PROVIDER_PAUSE)  # a kill here: the money moved, the platform has not recorded it
    return receipt


class MarkedPayments(SandboxPayments):
    def refund(self, charge_id, amount, currency, idempotency_key, reason, *, case_id):
        return _marked(lambda: super(MarkedPayments, self).refund(charge_id, amount, currency, idempotency_key, reason,
                                                                  case_id=case_id), idempotency_key)  # fmt: skip


class MarkedBilling(SandboxBilling):
    def issue_credit(self, customer_id, amount, currency, idempotency_key, reason, *, case_id):
        return _marked(lambda: super(MarkedBilling, self).issue_credit(customer_id, amount, currency, idempotency_key, reason,
                                                                       case_id=case_id), idempotency_key)  # fmt: skip


class MarkedVectors(VectorStoreResource):
    def upsert_resolutions(self, records):
        phase("embed", ",".join(r.case_id for r in records))
        return super().upsert_resolutions(records)


def main(keys: list[str]) -> int:
    env = os.environ
    sqs = SQSResource(
        endpoint_url=env["CRASH_SQS_ENDPOINT"],
        dispute_events_queue_url=env["CRASH_EVENTS_QUEUE"],
        human_review_queue_url=env["CRASH_REVIEW_QUEUE"],
        wait_time_seconds=0,
    )
    from pathlib import Path

    home = Path(env["CRASH_HOME"])
    resources = build_test_resources(env["CRASH_DATABASE_URL"], sqs, home)
    postgres = MarkedPostgres(database_url=env["CRASH_DATABASE_URL"])
    resources["postgres"] = postgres
    resources["crm"] = type(resources["crm"])(postgres=postgres)
    resources["billing"] = MarkedBilling(postgres=postgres)
    resources["payments"] = MarkedPayments(postgres=postgres)
    resources["vectors"] = MarkedVectors(chroma_path=str(home / "chroma"))
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("disputes", keys)
    phase("imported")
    result = materialize(
        REVIEW, instance=instance, resources=resources, tags={RANGE_START: keys[0], RANGE_END: keys[-1]}, raise_on_error=False
    )
    phase("finished", f"success={result.success}")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
