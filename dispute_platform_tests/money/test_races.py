"""Money moves exactly once: every race and mishap of issue 11, reproduced against real PostgreSQL
with threads and barriers, judged at the provider's own ledger.

1. a launchpad decision under someone else's name, a limit raised in run config, two names for one person;
2. a late proposal save over a decision, then a second approval (and a save over an executed dispute);
3. a crash after the provider call, retried after the provider forgot the key (refunds and credits);
4. two runs at once, one failing after the other succeeded;
5. the SLA sweep writing over a decision it did not see;
6. a decision that commits after a later one.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import psycopg2
import pytest
from dagster import DagsterInstance, build_sensor_context, materialize
from dagster._core.errors import DagsterInvalidConfigError

from dispute_platform.domain.models import ModifiedResolution
from dispute_platform.domain.review import DecisionRefused
from dispute_platform.domain.states import PROPOSAL_MAY_REGENERATE, Status
from dispute_platform.resources.limits import Limits
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.store import repo
from dispute_platform.store import reviewers as reviewer_store
from dispute_platform.store.proposals import save_proposal
from dispute_platform.workflow.notify import escalate_overdue
from dispute_platform.workflow.review import _record, decide_with_ticket, issue_decision_ticket
from dispute_platform_tests.definitions import ai_proposal, review_decision_sensor
from dispute_platform_tests.integration.harness import REVIEW, decide, reviewer, run_intake, run_review
from dispute_platform_tests.money.support import (
    CREDIT_125,
    ESCALATED,
    REFUND_49,
    REFUND_490,
    Gate,
    LostResponse,
    Unreachable,
    execute,
    forget_keys,
    ledger,
    pending,
    status,
    wait_for_lock_waiter,
)

pytestmark = pytest.mark.integration


def _ticket(db, who: str, case_id: str, version: int = 1, ttl: int = 900) -> str:
    return issue_decision_ticket(db, reviewer(db, who), case_id, version, Limits(decision_ticket_ttl_seconds=ttl), "api").ticket


def _instance(*case_ids: str) -> DagsterInstance:
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("disputes", list(case_ids))
    return instance


def _launchpad(resources, case_id: str, **config):
    return run_review(_instance(case_id), resources, case_id, run_config={"ops": {"review_decision": {"config": config}}})


# --- 1. four-eyes through the launchpad --------------------------------------------------------


def test_the_launchpad_refuses_a_name_and_a_raised_limit(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [ESCALATED])
    modified = {"action": "credit", "amount": 1500.0, "reason": "goodwill"}
    # A name proves nothing: the run fails and records nothing.
    named = _launchpad(resources, ESCALATED, decision="modified", reviewer="anyone-at-all", modified_resolution=modified)
    assert not named.success
    assert db.fetch_all("SELECT * FROM review_decisions") == [] and status(db, ESCALATED) == "pending_review"
    # Limits are deployment settings: a threshold raised in run config is ignored (the limits are a
    # plain object, not a configurable resource), so alice's 1,500 is still only a first approval.
    raised = {
        "ops": {"review_decision": {"config": {"decision": "modified", "ticket": _ticket(db, "alice", ESCALATED),
                                               "modified_resolution": modified}}},
        "resources": {"limits": {"config": {"escalation_threshold_usd": "1000000"}}},
    }  # fmt: skip
    try:
        materialize(REVIEW, instance=_instance(ESCALATED), resources=resources, partition_key=ESCALATED, run_config=raised,
                    raise_on_error=False)  # fmt: skip
    except DagsterInvalidConfigError:
        pass  # refusing the override outright would be as good
    assert status(db, ESCALATED) in ("pending_review", "awaiting_second_review") and ledger(db) == []
    db.transact(lambda cur: (cur.execute("TRUNCATE review_decisions RESTART IDENTITY CASCADE"),
                             cur.execute("UPDATE workflow_states SET status = 'pending_review'")))  # fmt: skip

    # With tickets: alice's modified 1,500 is a first approval only; her ticket works once; a second
    # ticket of hers cannot be the second pair of eyes; bob's can.
    ticket = _ticket(db, "alice", ESCALATED)
    assert _launchpad(resources, ESCALATED, decision="modified", ticket=ticket, modified_resolution=modified).success
    assert status(db, ESCALATED) == "awaiting_second_review" and ledger(db) == []
    assert not _launchpad(resources, ESCALATED, decision="approved", ticket=ticket).success  # used
    assert not _launchpad(resources, ESCALATED, decision="approved", ticket=_ticket(db, "alice", ESCALATED)).success
    assert status(db, ESCALATED) == "awaiting_second_review"
    assert _launchpad(resources, ESCALATED, decision="approved", ticket=_ticket(db, "bob", ESCALATED)).success
    rows = db.fetch_all("SELECT reviewer, reviewer_id, source FROM review_decisions ORDER BY id")
    assert [(r["reviewer"], r["source"]) for r in rows] == [("alice", "launchpad"), ("bob", "launchpad")]
    assert len({r["reviewer_id"] for r in rows}) == 2
    [moved] = ledger(db, ESCALATED)
    assert moved["kind"] == "credit" and moved["amount"] == Decimal("1500.00")


def test_a_ticket_is_for_one_dispute_one_version_a_short_time_and_an_active_reviewer(db, sqs, pg_url, tmp_path, chroma_dir):
    pending(db, pg_url, sqs, tmp_path, [REFUND_49, CREDIT_125])
    limits = Limits()

    def use(ticket: str, case_id: str = REFUND_49, version: int | None = None) -> int:
        with pytest.raises(DecisionRefused) as refused:
            decide_with_ticket(db, ticket=ticket, case_id=case_id, decision="approved", comments="", proposal_version=version,
                               modified=None, limits=limits, run_id="test")  # fmt: skip
        return refused.value.status_code

    assert use(_ticket(db, "alice", CREDIT_125)) == 403  # issued for another dispute
    assert use(_ticket(db, "alice", REFUND_49), version=2) == 409  # for another version
    assert use("dt_made-up") == 401
    expired = _ticket(db, "alice", REFUND_49, ttl=30)
    db.transact(lambda cur: cur.execute("UPDATE decision_tickets SET expires_at = now() - interval '1 second'"))
    assert use(expired) == 401
    revoked = _ticket(db, "mallory", REFUND_49)
    db.transact(lambda cur: cur.execute("UPDATE reviewers SET disabled_at = now() WHERE name = 'mallory'"))
    assert use(revoked) == 401
    rotated = _ticket(db, "bob", REFUND_49)
    assert db.transact(lambda cur: reviewer_store.rotate_token(cur, "BOB", "a-new-token"))  # any case finds bob
    assert use(rotated) == 401  # rotating burns the unused tickets
    assert db.fetch_all("SELECT * FROM review_decisions") == [] and status(db, REFUND_49) == "pending_review"
    # A stale version is refused at issue time too.
    with pytest.raises(DecisionRefused) as stale:
        issue_decision_ticket(db, reviewer(db, "alice"), REFUND_49, 2, limits, "api")
    assert stale.value.status_code == 409


def test_one_person_one_name_whatever_its_case(db):
    reviewer(db, "mallory")
    with pytest.raises(psycopg2.errors.UniqueViolation):
        db.transact(lambda cur: reviewer_store.add_reviewer(cur, "Mallory", "another-token"))
    assert db.fetch_one("SELECT COUNT(*) AS n FROM reviewers")["n"] == 1


def test_four_eyes_compares_usd_values_and_an_unpriced_currency_needs_two(db, sqs, pg_url, tmp_path, chroma_dir):
    pending(db, pg_url, sqs, tmp_path, [ESCALATED])
    modified = ModifiedResolution(action="credit", amount=Decimal("999"), reason="goodwill")
    for currency, final in (("USD", True), ("GBP", False), ("KWD", False), ("XTS", False)):
        db.transact(lambda cur, c=currency: (
            cur.execute("TRUNCATE review_decisions, executions RESTART IDENTITY CASCADE"),
            cur.execute("UPDATE workflow_states SET currency = %s, status = 'pending_review' WHERE case_id = %s", (c, ESCALATED)),
        ))  # fmt: skip
        recorded = decide(db, ESCALATED, "modified", "alice", modified=modified)
        assert recorded.outcome.final is final, currency


# --- 2. a late proposal save, then a second approval ------------------------------------------


class GatedProposer:
    """The rules engine, paused inside `propose` until the test lets it go: a regenerate batch
    that read the dispute before the reviewer decided."""

    name = "precedent"
    cacheable = False

    def __init__(self, gate: Gate):
        from dispute_platform.resources.llm import PrecedentProposer

        self.gate, self.real = gate, PrecedentProposer()

    def propose(self, *args, **kwargs):
        self.gate.wait_here()
        return self.real.propose(*args, **kwargs)


def test_a_late_proposal_save_cannot_reopen_a_decided_dispute(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_49])
    gate = Gate()
    regenerate: dict = {}

    def late_batch() -> None:
        regenerate["result"] = materialize(
            [ai_proposal], instance=_instance(REFUND_49), resources=resources | {"proposer": GatedProposer(gate)},
            partition_key=REFUND_49, run_config={"ops": {"ai_proposal": {"config": {"regenerate": True}}}},
            raise_on_error=False,
        )  # fmt: skip

    batch = threading.Thread(target=late_batch)
    batch.start()
    assert gate.reached.wait(60), "the regenerate batch never asked for a proposal"
    # Meanwhile: v1 is approved, and the refund's answer is lost (money moved, row says failed).
    decide(db, REFUND_49, "approved", "alice")
    with pytest.raises(ConnectionError):
        execute(db, resources, REFUND_49, payments=LostResponse(resources["payments"]))
    assert status(db, REFUND_49) == "execution_failed" and len(ledger(db, REFUND_49)) == 1
    gate.release.set()
    batch.join(60)

    # The batch's save found the dispute elsewhere: nothing written but an audit row.
    assert regenerate["result"].success
    assert [r["version"] for r in db.fetch_all("SELECT version FROM proposals WHERE case_id = %s", (REFUND_49,))] == [1]
    assert status(db, REFUND_49) == "execution_failed"
    refused = db.fetch_one("SELECT details FROM audit_log WHERE case_id = %s AND event = 'transition_refused'", (REFUND_49,))
    assert refused["details"]["from"] == "execution_failed" and refused["details"]["to"] == "pending_review"
    with pytest.raises(DecisionRefused) as again:
        decide(db, REFUND_49, "approved", "bob", version=2)
    assert again.value.status_code == 409

    # The retry asks the provider first and finds the refund: one movement, executed.
    result = execute(db, resources, REFUND_49)
    assert result.status == "executed" and result.replayed
    assert len(ledger(db, REFUND_49)) == 1 and status(db, REFUND_49) == "executed"
    # A save over an executed dispute changes nothing either.
    stored = db.fetch_one("SELECT proposal FROM proposals WHERE case_id = %s", (REFUND_49,))["proposal"]
    saved = db.transact(lambda cur: save_proposal(cur, REFUND_49, stored, status=Status.PENDING_REVIEW,
                                                  allowed_from=PROPOSAL_MAY_REGENERATE, reason=None, run_id=None))  # fmt: skip
    assert saved is None and status(db, REFUND_49) == "executed"


# --- 3. a crash after the provider call, retried after the key expired --------------------------


@pytest.mark.parametrize("case_id, kind", [(REFUND_490, "refund"), (CREDIT_125, "credit")])
def test_a_retry_after_the_provider_forgot_the_key_finds_the_movement(db, sqs, pg_url, tmp_path, chroma_dir, case_id, kind):
    resources = pending(db, pg_url, sqs, tmp_path, [case_id])
    decide(db, case_id, "approved", "alice")
    crashing = {"payments": LostResponse(resources["payments"]), "billing": LostResponse(resources["billing"])}
    with pytest.raises((ConnectionError, TimeoutError)):
        execute(db, resources, case_id, **crashing)
    [first] = ledger(db, case_id)
    assert first["kind"] == kind and status(db, case_id) == "execution_failed"
    assert db.fetch_one("SELECT status FROM executions WHERE case_id = %s", (case_id,))["status"] == "started"

    forget_keys(db)  # a day later: the provider no longer knows the key
    result = execute(db, resources, case_id)
    assert result.status == "executed" and result.reference == first["reference"]
    assert len(ledger(db, case_id)) == 1, ledger(db, case_id)
    row = db.fetch_one("SELECT status, reconciled, attempts, idempotency_key FROM executions WHERE case_id = %s", (case_id,))
    assert row["status"] == "succeeded" and row["reconciled"] and row["attempts"] == 2
    assert row["idempotency_key"] == f"dispute-{case_id}"


def test_the_sandbox_forgets_keys_like_a_real_provider(db, sqs, pg_url, tmp_path, chroma_dir):
    """The judge of the test above can fail: after the window, the same key moves money again."""
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_490])
    charge = db.fetch_one("SELECT validation FROM workflow_states WHERE case_id = %s", (REFUND_490,))["validation"]
    payments = resources["payments"]
    first = payments.refund(charge["disputed_charge_id"], Decimal("10.00"), "USD", "key-1", "x", case_id=REFUND_490)
    assert payments.refund(charge["disputed_charge_id"], Decimal("10.00"), "USD", "key-1", "x", case_id=REFUND_490).replayed
    forget_keys(db)
    again = payments.refund(charge["disputed_charge_id"], Decimal("10.00"), "USD", "key-1", "x", case_id=REFUND_490)
    assert not again.replayed and again.reference != first.reference and len(ledger(db, REFUND_490)) == 2


def test_two_disputes_on_one_charge_cannot_together_exceed_it(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_490, CREDIT_125])
    owner = db.fetch_one("SELECT customer_id, validation FROM workflow_states WHERE case_id = %s", (REFUND_490,))
    # Make the credit dispute a second case of the same customer about the same 490.00 charge.
    db.transact(lambda cur: cur.execute(
        "UPDATE workflow_states SET customer_id = %s, "
        "validation = validation || jsonb_build_object('disputed_charge_id', %s::text) WHERE case_id = %s",
        (owner["customer_id"], owner["validation"]["disputed_charge_id"], CREDIT_125)))  # fmt: skip
    decide(db, CREDIT_125, "approved", "alice")
    decide(db, REFUND_490, "approved", "alice")
    assert execute(db, resources, CREDIT_125).status == "executed"  # 125 of 490
    with pytest.raises(Exception, match="still refundable"):
        execute(db, resources, REFUND_490)  # 490 more would be 615 on a 490 charge
    assert [r["case_id"] for r in ledger(db)] == [CREDIT_125]
    assert db.fetch_one("SELECT status FROM executions WHERE case_id = %s", (REFUND_490,))["status"] == "failed"


# --- 4. two runs at once -------------------------------------------------------------------------


@pytest.mark.parametrize("first_fails", [False, True])
def test_two_runs_at_once_move_money_once(db, sqs, pg_url, tmp_path, chroma_dir, first_fails):
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_490])
    decide(db, REFUND_490, "approved", "alice")
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def run(name: str, payments) -> None:
        barrier.wait()
        try:
            outcomes[name] = execute(db, resources, REFUND_490, payments=payments).status
        except Exception as exc:  # noqa: BLE001
            outcomes[name] = exc.__class__.__name__

    failing = Unreachable(resources["payments"])
    threads = [
        threading.Thread(target=run, args=("a", failing if first_fails else resources["payments"])),
        threading.Thread(target=run, args=("b", resources["payments"] if first_fails else failing)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(ledger(db, REFUND_490)) == 1, outcomes
    row = db.fetch_one("SELECT status FROM executions WHERE case_id = %s", (REFUND_490,))
    assert row["status"] == "succeeded", outcomes
    # Whoever failed, the success stands (or was made by the retry that follows).
    if status(db, REFUND_490) != "executed":
        assert execute(db, resources, REFUND_490).status in ("executed", "already_done")
    assert status(db, REFUND_490) == "executed" and len(ledger(db, REFUND_490)) == 1


def test_a_recorded_success_is_never_overwritten(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_49])
    decide(db, REFUND_49, "approved", "alice")
    assert execute(db, resources, REFUND_49).status == "executed"
    # A late failure report from another run changes nothing ...
    from dispute_platform.store import executions

    execution_id = db.fetch_one("SELECT id FROM executions WHERE case_id = %s", (REFUND_49,))["id"]
    assert db.transact(lambda cur: executions.settle(cur, execution_id, "failed", error="late")) is False
    # ... and not even a hand-written UPDATE gets through.
    with pytest.raises(psycopg2.errors.RaiseException, match="never overwritten"):
        db.transact(lambda cur: cur.execute("UPDATE executions SET status = 'failed' WHERE id = %s", (execution_id,)))
    with pytest.raises(psycopg2.errors.UniqueViolation):  # and a second live movement cannot be written
        db.transact(lambda cur: cur.execute(
            """INSERT INTO executions (case_id, proposal_version, decision_id, idempotency_key, action, amount, currency, status)
               SELECT case_id, proposal_version, decision_id, 'other-key', action, amount, currency, 'started'
               FROM executions WHERE id = %s""", (execution_id,)))  # fmt: skip
    assert execute(db, resources, REFUND_49).status == "already_done"
    assert len(ledger(db, REFUND_49)) == 1


# --- 5. the SLA sweep against a decision --------------------------------------------------------


def _review_tick(pg_url, sqs, resources):
    context = build_sensor_context(
        instance=DagsterInstance.ephemeral(),
        resources={"postgres": PostgresResource(database_url=pg_url), "sqs": sqs, "email": resources["email"]},
    )
    return review_decision_sensor(context)


def test_the_sla_sweep_cannot_strand_an_approval(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_49])
    db.transact(lambda cur: cur.execute("UPDATE proposals SET created_at = now() - interval '49 hours'"))
    holder = db.cursor()
    cur = holder.__enter__()  # the reviewer's transaction, holding the dispute's lock
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("case:" + REFUND_49,))
    sweep: dict = {}
    sensor = threading.Thread(target=lambda: sweep.setdefault("tick", _review_tick(pg_url, sqs, resources)))
    sensor.start()
    wait_for_lock_waiter(db)  # the sweep read the overdue dispute and waits to escalate it
    _record(cur, case_id=REFUND_49, decision="approved", reviewer=reviewer(db, "alice"), comments="", proposal_version=1,
            modified=None, source="api", limits=Limits())  # fmt: skip
    holder.__exit__(None, None, None)  # the approval commits
    sensor.join(60)

    assert status(db, REFUND_49) == "decided"
    assert db.fetch_one("SELECT COUNT(*) AS n FROM audit_log WHERE event = 'sla_escalated'")["n"] == 0
    assert not list((tmp_path / "outbox").glob("*sla-*.eml"))
    assert escalate_overdue(db, REFUND_49, 1, 48) is False  # and any later sweep changes nothing
    # The approval goes on to execution: the next tick asks for it.
    tick = _review_tick(pg_url, sqs, resources)
    assert [r.partition_key for r in tick.run_requests] == [REFUND_49]
    assert execute(db, resources, REFUND_49).status == "executed"


# --- 6. a decision that commits late ------------------------------------------------------------


def test_a_decision_that_commits_after_a_later_one_is_still_executed(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_49, CREDIT_125])
    early = db.cursor()
    cur = early.__enter__()
    first = _record(cur, case_id=REFUND_49, decision="approved", reviewer=reviewer(db, "alice"), comments="",
                    proposal_version=1, modified=None, source="api", limits=Limits())  # fmt: skip
    second = decide(db, CREDIT_125, "approved", "bob")  # committed first, with the higher id
    assert second.decision_id > first.decision_id
    tick = _review_tick(pg_url, sqs, resources)
    assert [r.partition_key for r in tick.run_requests] == [CREDIT_125]
    early.__exit__(None, None, None)  # the lower id commits now
    tick = _review_tick(pg_url, sqs, resources)
    assert sorted(r.partition_key for r in tick.run_requests) == sorted([REFUND_49, CREDIT_125])
    assert {r.run_key for r in tick.run_requests} == {f"review:{REFUND_49}:{first.decision_id}",
                                                      f"review:{CREDIT_125}:{second.decision_id}"}  # fmt: skip


def test_no_entry_point_moves_a_dispute_backwards(db, sqs, pg_url, tmp_path, chroma_dir):
    """Intake, proposal, decision and SLA writers aimed at an executed dispute all change nothing."""
    from dispute_platform.store.transitions import transition

    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_49])
    decide(db, REFUND_49, "approved", "alice")
    execute(db, resources, REFUND_49)
    for to in (Status.RUNNING, Status.ENRICHED, Status.PENDING_REVIEW, Status.BLOCKED, Status.REVIEW_ESCALATED,
               Status.DECIDED, Status.EXECUTING, Status.PROPOSAL_FAILED):  # fmt: skip
        assert db.transact(lambda cur, to=to: transition(cur, REFUND_49, to, "test")) is False, to
    assert status(db, REFUND_49) == "executed"
    # Re-running the whole intake over it (a backfill, a redelivered event) changes nothing either.
    assert run_intake(DagsterInstance.ephemeral(), resources, [REFUND_49]).success
    assert status(db, REFUND_49) == "executed" and len(ledger(db, REFUND_49)) == 1
    assert db.transact(lambda cur: repo.latest_proposal(cur, REFUND_49))["version"] == 1


def test_an_approved_denial_is_executed_as_a_recorded_no_op(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, [REFUND_49])
    decide(db, REFUND_49, "modified", "alice", modified=ModifiedResolution(action="deny", amount=Decimal("0"), reason="no"))
    result = execute(db, resources, REFUND_49)
    assert result.status == "executed" and result.action == "deny"
    assert status(db, REFUND_49) == "executed" and ledger(db) == []
    row = db.fetch_one("SELECT status, action FROM executions WHERE case_id = %s", (REFUND_49,))
    assert row == {"status": "noop", "action": "deny"}
    assert execute(db, resources, REFUND_49).status == "already_done"  # and no movement can follow it
    assert len(list((tmp_path / "outbox").glob(f"*notice-{REFUND_49}*.eml"))) == 1
