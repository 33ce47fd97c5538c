"""Blocking asset checks on `ai_proposal`: input tokens, output tokens, cost and amount, each
against its cap, with the figures in the metadata.

`blocking=True` stops downstream steps in the same run only; review and execution run later, so
the checks also write their verdict to Postgres (check_results) and move a failing dispute to
`blocked`. Execution demands a passing row for every cap of the proposal version it executes, so a
proposal that failed a check, or was never checked, can not reach the money.
"""


from decimal import Decimal

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetChecksDefinition, MetadataValue, asset_check

from dispute_platform.assets.disputes import ai_proposal
from dispute_platform.domain.caps import CAP_NAMES, CapResult, evaluate_caps
from dispute_platform.domain.models import ResolutionProposal
from dispute_platform.domain.states import AWAITING_DECISION, Status
from dispute_platform.partitions import disputes_partitions
from dispute_platform.resources.limits import LimitsResource
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.store import repo
from dispute_platform.store.db import Database


def evaluate_stored(db: Database, case_ids: list[str], limits: LimitsResource, run_id: str | None) -> dict[str, list[CapResult]]:
    """Evaluate every cap for the latest proposal of each dispute, record the results and block
    the disputes that fail. Shared by the four checks (the first to run records for all)."""
    caps = limits.proposal_limits().caps

    def run(cur) -> dict[str, list[CapResult]]:
        proposals = repo.latest_proposals(cur, case_ids)
        states = repo.workflow_states(cur, case_ids)
        results: dict[str, list[CapResult]] = {}
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
            results[case_id] = evaluated
            for result in evaluated:
                repo.record_check(cur, case_id, row["version"], result.name, result.passed, result.figure, result.cap, run_id)
            failed = [r.name for r in evaluated if not r.passed]
            if failed and state["status"] in AWAITING_DECISION | {Status.PENDING_REVIEW}:
                repo.set_status(cur, case_id, Status.BLOCKED, "ai_proposal", f"over cap: {', '.join(failed)}")
                repo.set_proposal_status(cur, case_id, row["version"], "blocked")
                repo.audit(cur, case_id, "ai_proposal", "blocked_by_check", {"failed": failed, "version": row["version"]},
                           run_id=run_id)  # fmt: skip
        return results

    return db.transact(run)


def _make_cap_check(name: str, description: str) -> AssetChecksDefinition:
    @asset_check(
        asset=ai_proposal,
        name=name,
        blocking=True,
        partitions_def=disputes_partitions,
        description=description,
    )
    def _check(context: AssetCheckExecutionContext, postgres: PostgresResource, limits: LimitsResource) -> AssetCheckResult:
        keys = list(context.partition_keys) if context.has_partition_key_range or context.has_partition_key else []
        results = evaluate_stored(postgres.db, keys, limits, context.run.run_id)
        mine = {case_id: next(r for r in caps if r.name == name) for case_id, caps in results.items()}
        failing = {case_id: r for case_id, r in mine.items() if not r.passed}
        figures = [r.figure for r in mine.values()]
        cap = next(iter(mine.values())).cap if mine else None
        metadata = {
            "disputes_checked": len(mine),
            "disputes_failing": len(failing),
            "max_figure": float(max(figures)) if figures else 0.0,
            "cap": float(cap) if cap is not None else None,
            "failing": MetadataValue.json({k: {"figure": str(r.figure), "cap": str(r.cap)} for k, r in failing.items()}),
        }
        if len(mine) == 1:
            only = next(iter(mine.values()))
            metadata |= {"figure": float(only.figure)}
        return AssetCheckResult(
            passed=not failing,
            metadata=metadata,
            description=(
                f"{len(failing)} dispute(s) over the cap: {', '.join(sorted(failing)[:10])}" if failing else "all within the cap"
            ),
        )

    return _check


_DESCRIPTIONS = {
    "input_tokens_within_cap": "Prompt tokens (o200k_base, counted before the call) are within the input cap (2,075 by default).",
    "output_tokens_within_cap": "Completion tokens are within the output cap (1,000 by default).",
    "cost_within_cap": "The dispute's LLM cost, all proposals counted, is within the per-dispute cap ($0.001 by default).",
    "amount_within_refundable": "A refund is not above what is still refundable on the charge (a credit: not above the disputed amount).",
}

cap_checks = [_make_cap_check(name, _DESCRIPTIONS[name]) for name in CAP_NAMES]
