"""A stateful property test of the money path against real PostgreSQL: hypothesis interleaves
proposal saves (late regenerate batches), decisions by several reviewers, SLA sweeps with stale
reads, executions whose provider answers, loses its answer or is unreachable, two executions at
once, and the provider forgetting its idempotency keys. After every step:

- never two movements for one dispute (judged at the provider's ledger);
- never backwards (a dispute's status rank only grows);
- above the four-eyes threshold, an executed movement had two distinct reviewer records;
- an executed dispute has exactly one movement, the one its execution row names.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from dispute_platform.domain.models import ModifiedResolution
from dispute_platform.domain.review import DecisionRefused
from dispute_platform.domain.states import PROPOSAL_MAY_REGENERATE, RANK, Status
from dispute_platform.resources.limits import Limits
from dispute_platform.store.proposals import save_proposal
from dispute_platform.workflow.notify import escalate_overdue
from dispute_platform_tests.integration.harness import decide
from dispute_platform_tests.money.support import (
    CREDIT_125,
    REFUND_49,
    LostResponse,
    Unreachable,
    execute,
    forget_keys,
    ledger,
    pending,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CASES = [REFUND_49, CREDIT_125]
THRESHOLD = Decimal("100")  # low, so that most movements need two reviewers
LIMITS = Limits(escalation_threshold_usd=THRESHOLD)
SNAPSHOT = ["workflow_states", "proposals", "check_results"]
RESET = ["review_decisions", "executions", "decision_tickets", "sandbox_refunds", "sandbox_credits", "audit_log"]


def test_interleavings_never_pay_twice_or_go_backwards(db, sqs, pg_url, tmp_path, chroma_dir):
    resources = pending(db, pg_url, sqs, tmp_path, CASES)
    db.transact(lambda cur: [cur.execute(f"CREATE TABLE snap_{t} AS SELECT * FROM {t}") for t in SNAPSHOT])

    class MoneyMachine(RuleBasedStateMachine):
        @initialize()
        def restore(self) -> None:
            def reset(cur) -> None:
                cur.execute(f"TRUNCATE {', '.join(RESET + SNAPSHOT)} CASCADE")  # sequences go on: ids stay unique
                for table in SNAPSHOT:
                    cur.execute(f"INSERT INTO {table} SELECT * FROM snap_{table}")

            db.transact(reset)
            self.rank = {case: RANK[Status.PENDING_REVIEW] for case in CASES}

        def version(self, case: str) -> int:
            return db.fetch_one("SELECT proposal_version FROM workflow_states WHERE case_id = %s", (case,))["proposal_version"]

        @rule(case=st.sampled_from(CASES), who=st.sampled_from(["alice", "bob", "carol"]),
              kind=st.sampled_from(["approved", "approved", "rejected", "modified_low", "modified_high"]),
              stale=st.sampled_from([False, False, False, True]))  # fmt: skip
        def a_reviewer_decides(self, case, who, kind, stale):
            modified = None
            if kind.startswith("modified"):
                modified = ModifiedResolution(
                    action="credit", amount=Decimal("40" if kind == "modified_low" else "120"), reason="r"
                )
            try:
                decide(db, case, "modified" if modified else kind, who, version=self.version(case) - stale, modified=modified,
                       limits=LIMITS)  # fmt: skip
            except DecisionRefused:
                pass

        @rule(case=st.sampled_from(CASES))
        def a_late_batch_saves_a_proposal(self, case):
            stored = db.fetch_one("SELECT proposal FROM proposals WHERE case_id = %s ORDER BY version LIMIT 1", (case,))
            db.transact(lambda cur: save_proposal(cur, case, stored["proposal"], status=Status.PENDING_REVIEW,
                                                  allowed_from=PROPOSAL_MAY_REGENERATE, reason=None, run_id=None))  # fmt: skip

        @rule(case=st.sampled_from(CASES), stale=st.sampled_from([False, True]))
        def the_sla_sweep_runs(self, case, stale):
            escalate_overdue(db, case, self.version(case) - stale, 48)

        @rule(case=st.sampled_from(CASES),
              provider=st.sampled_from(["answers", "loses_the_answer", "unreachable", "forgot_its_keys"]))  # fmt: skip
        def an_execution_runs(self, case, provider):
            if provider == "forgot_its_keys":
                forget_keys(db)  # a retry a day later
            wrap = {"loses_the_answer": LostResponse, "unreachable": Unreachable}.get(provider, lambda p: p)
            try:
                execute(db, resources, case, payments=wrap(resources["payments"]), billing=wrap(resources["billing"]))
            except Exception:  # noqa: BLE001 - refusals and provider failures are part of the game
                pass

        @rule(case=st.sampled_from(CASES))
        def two_executions_run_at_once(self, case):
            barrier = threading.Barrier(2)

            def run(payments, billing) -> None:
                barrier.wait()
                try:
                    execute(db, resources, case, payments=payments, billing=billing)
                except Exception:  # noqa: BLE001
                    pass

            threads = [
                threading.Thread(target=run, args=(resources["payments"], resources["billing"])),
                threading.Thread(target=run, args=(LostResponse(resources["payments"]), LostResponse(resources["billing"]))),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)

        @invariant()
        def never_two_movements_and_never_backwards(self):
            if not hasattr(self, "rank"):
                return
            for case in CASES:
                moved = ledger(db, case)
                assert len(moved) <= 1, (case, moved)
                state = db.fetch_one("SELECT status FROM workflow_states WHERE case_id = %s", (case,))
                rank = RANK[Status(state["status"])]
                assert rank >= self.rank[case], (case, state["status"])
                self.rank[case] = rank
                live = db.fetch_one(
                    "SELECT * FROM executions WHERE case_id = %s AND status IN ('started', 'succeeded', 'noop')", (case,)
                )
                if state["status"] in ("executed", "completed"):
                    assert live is not None and live["status"] == "succeeded" and len(moved) == 1, (case, live, moved)
                    assert live["provider_ref"] == moved[0]["reference"] and live["amount"] == moved[0]["amount"]
                if moved:
                    assert live is not None and live["status"] in ("started", "succeeded"), (case, live)
                    if moved[0]["amount"] > THRESHOLD:
                        approvers = db.fetch_all(
                            "SELECT DISTINCT reviewer_id FROM review_decisions WHERE case_id = %s AND proposal_version = %s "
                            "AND decision IN ('approved', 'modified')",
                            (case, live["proposal_version"]),
                        )
                        assert len(approvers) >= 2, (case, moved, approvers)

    run_state_machine_as_test(
        MoneyMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),  # fmt: skip
    )
