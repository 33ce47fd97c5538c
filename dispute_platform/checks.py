"""Blocking asset checks on `ai_proposal`: input tokens, output tokens, cost and amount, each
against its cap, with the figures in the metadata.

`blocking=True` stops downstream steps in the same run only; review and execution run later, so
the checks also write their verdict to Postgres (check_results) and move a failing dispute to
`blocked`. Execution demands a passing row for every cap of the proposal version it executes, so a
proposal that failed a check, or was never checked, can not reach the money.
"""


from decimal import Decimal

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    MetadataValue,
    ResourceParam,
    asset_check,
)

from dispute_platform.assets.disputes import ai_proposal
from dispute_platform.domain.caps import CAP_NAMES
from dispute_platform.partitions import disputes_partitions
from dispute_platform.resources.limits import Limits
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.workflow.caps import evaluate_stored


def _make_cap_check(name: str, description: str) -> AssetChecksDefinition:
    @asset_check(
        asset=ai_proposal,
        name=name,
        blocking=True,
        partitions_def=disputes_partitions,
        description=description,
    )
    def _check(context: AssetCheckExecutionContext, postgres: PostgresResource, limits: ResourceParam[Limits]) -> AssetCheckResult:
        keys = list(context.partition_keys) if context.has_partition_key_range or context.has_partition_key else []
        results = evaluate_stored(postgres.db, keys, limits.caps, context.run.run_id)
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
