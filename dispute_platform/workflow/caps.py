"""The cap checks' evaluation over stored proposals, recorded in Postgres (check_results)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from dispute_platform.domain.caps import CapLimits, CapResult, evaluate_caps
from dispute_platform.domain.models import ResolutionProposal
from dispute_platform.domain.states import AWAITING_DECISION, Status
from dispute_platform.store import repo
from dispute_platform.store.db import Database
from dispute_platform.store.transitions import transition


@dataclass(frozen=True)
class CheckedProposal:
    """The four cap results of one dispute's latest proposal, and its status afterwards."""

    version: int
    caps: list[CapResult]
    status: str

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.caps)


def evaluate_stored(db: Database, case_ids: list[str], caps: CapLimits, run_id: str | None) -> dict[str, CheckedProposal]:
    """Evaluate every cap for the latest proposal of each dispute, record the results and block
    the disputes that fail, in one transaction (one read of the disputes). Used once per run by
    `ai_proposal`'s cap checks, and by execution, which evaluates them itself when the checks have
    not run yet. Disputes without a proposal are left out of the answer."""

    def run(cur) -> dict[str, CheckedProposal]:
        proposals = repo.latest_proposals(cur, case_ids)
        states = repo.workflow_states(cur, case_ids)
        results: dict[str, CheckedProposal] = {}
        for case_id, row in proposals.items():
            state = states[case_id]
            proposal = ResolutionProposal.model_validate(row["proposal"])
            validation = state["validation"] or {}
            refundable = validation.get("refundable_amount")
            spent_before = Decimal(state["llm_cost"] or 0) - proposal.cost_usd
            evaluated = evaluate_caps(
                proposal,
                Decimal(refundable) if refundable is not None else None,
                Decimal(state["disputed_amount"] or 0),
                caps,
                max(Decimal("0"), spent_before),
            )
            status = str(state["status"])
            for result in evaluated:
                repo.record_check(cur, case_id, row["version"], result.name, result.passed, result.figure, result.cap, run_id)
            failed = [r.name for r in evaluated if not r.passed]
            if failed and state["status"] in AWAITING_DECISION | {Status.DECIDED}:
                # Before a decision the dispute stops (blocked); after one it stays where it is and
                # execution refuses it (the failed rows above), so no decision is ever undone.
                blocked = transition(cur, case_id, Status.BLOCKED, "ai_proposal", f"over cap: {', '.join(failed)}",
                                     expect_version=row["version"], run_id=run_id)  # fmt: skip
                if blocked:
                    repo.set_proposal_status(cur, case_id, row["version"], "blocked")
                    status = Status.BLOCKED.value
                repo.audit(cur, case_id, "ai_proposal", "blocked_by_check",
                           {"failed": failed, "version": row["version"], "status_changed": blocked}, run_id=run_id)  # fmt: skip
            results[case_id] = CheckedProposal(row["version"], evaluated, status)
        return results

    return db.transact(run)
