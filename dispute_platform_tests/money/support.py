"""Shared pieces of the money suite: disputes brought to `pending_review` through the real intake
assets, providers that fail at chosen moments, and the provider's own ledger as the judge."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

from dagster import DagsterInstance

from dispute_platform.resources.limits import Limits
from dispute_platform.workflow.execute import ExecutionResult, execute_decision
from dispute_platform_tests.integration.harness import build_test_resources, run_intake, sample_event, store_events

# Sandbox disputes and what the rules engine proposes for them.
REFUND_49 = "CASE-1063"  # full_refund 49.00 on its charge
CREDIT_125 = "CASE-1065"  # credit 125.00
REFUND_490 = "CASE-1025"  # full_refund 490.00
ESCALATED = "CASE-1002"  # escalate (15,000 disputed)


def pending(db, pg_url: str, sqs: Any, tmp_path, cases: list[str], **resource_overrides: Any) -> dict[str, Any]:
    """Run the real intake over `cases` (they end pending review) and return the resources."""
    resources = build_test_resources(pg_url, sqs, tmp_path, **resource_overrides)
    store_events(db, [sample_event(c) for c in cases])
    result = run_intake(DagsterInstance.ephemeral(), resources, cases)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return resources


def execute(db, resources: dict[str, Any], case_id: str, **overrides: Any) -> ExecutionResult:
    """What the executed_resolution asset does for one dispute."""
    r = resources | overrides
    return execute_decision(db, case_id, payments=r["payments"], billing=r["billing"], crm=r["crm"], email=r["email"],
                            run_id=None, caps=Limits().caps)  # fmt: skip


def ledger(db, case_id: str | None = None) -> list[dict]:
    """Every refund and credit at the (sandbox) provider, optionally for one dispute: the truth."""
    rows = db.fetch_all(
        """SELECT 'refund' AS kind, refund_id AS reference, case_id, amount, idempotency_key, created_at FROM sandbox_refunds
           UNION ALL
           SELECT 'credit', credit_id, case_id, amount, idempotency_key, created_at FROM sandbox_credits
           ORDER BY created_at"""
    )
    return [r for r in rows if case_id is None or r["case_id"] == case_id]


def forget_keys(db, hours: float = 25) -> None:
    """The provider forgets idempotency keys after ~24 h: age every movement past that."""
    db.transact(lambda cur: (
        cur.execute("UPDATE sandbox_refunds SET created_at = created_at - make_interval(secs => %s)", (hours * 3600,)),
        cur.execute("UPDATE sandbox_credits SET created_at = created_at - make_interval(secs => %s)", (hours * 3600,)),
    ))  # fmt: skip


def status(db, case_id: str) -> str:
    return db.fetch_one("SELECT status FROM workflow_states WHERE case_id = %s", (case_id,))["status"]


class LostResponse:
    """A provider whose money moves but whose answer never arrives (a crash or a timeout after
    the call): the refund or credit exists at the provider, the platform hears an error."""

    def __init__(self, real: Any):
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def refund(self, *args: Any, **kwargs: Any) -> Any:
        self.real.refund(*args, **kwargs)
        raise ConnectionError("connection reset after the refund request was sent")

    def issue_credit(self, *args: Any, **kwargs: Any) -> Any:
        self.real.issue_credit(*args, **kwargs)
        raise TimeoutError("read timed out after the credit request was sent")


class Unreachable:
    """A provider that cannot be reached when money would move (nothing moves)."""

    def __init__(self, real: Any):
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def refund(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("connection refused")

    def issue_credit(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("connection refused")


def wait_for_lock_waiter(db, timeout: float = 20) -> None:
    """Block until some session waits on an advisory lock (the other side of a barrier that
    Postgres itself holds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = db.fetch_one("SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        if row["n"]:
            return
        time.sleep(0.02)
    raise AssertionError("nobody waited on the lock")


class Gate:
    """A one-shot barrier between a test and a provider or proposer call in another thread."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def wait_here(self, timeout: float = 60) -> None:
        self.reached.set()
        if not self.release.wait(timeout):
            raise TimeoutError("the gate was never released")


def money(value: str) -> Decimal:
    return Decimal(value)
