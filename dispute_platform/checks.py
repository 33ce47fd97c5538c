"""The four cap checks on `ai_proposal` (input tokens, output tokens, cost and amount, each
against its cap), evaluated once per run and reported per dispute.

The checks are declared on the asset itself (`check_specs`) and evaluated in its step, right after
the proposals are saved: one evaluation (`workflow.caps.evaluate_stored`, one read of the run's
disputes) records all four verdicts of every dispute in Postgres (check_results), moves a failing
dispute to `blocked`, and yields one `AssetCheckEvaluation` per dispute and cap, tagged with the
dispute's partition, so Dagster shows each dispute's own figure and cap.

They are not Dagster-`blocking`: Dagster blocks per step, and a run's step carries many disputes,
so a blocking failure would fail the whole batch run (and stop nothing per dispute). Blocking is
per dispute, in Postgres: the failing dispute is `blocked`, and execution demands a passing row for
every cap of the proposal version it executes, so a proposal that failed a check, or was never
checked, can not reach the money.

Why on the asset and not a separate `@multi_asset_check`: `ai_proposal` materializes only the
disputes it proposed for (the others are skipped with their reason), so it yields no step output,
and Dagster skips any step downstream of an output that was not yielded, a separate check step
included.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from dagster import AssetCheckEvaluation, AssetCheckKey, AssetCheckSpec, AssetKey, AssetRecordsFilter, DagsterInstance

# Not exported at the top level in 1.13; what AssetCheckResult fills in for a single partition.
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData

from dispute_platform.domain.caps import CAP_NAMES
from dispute_platform.partitions import disputes_partitions
from dispute_platform.workflow.caps import CheckedProposal

AI_PROPOSAL = AssetKey("ai_proposal")

_DESCRIPTIONS = {
    "input_tokens_within_cap": "Prompt tokens (o200k_base, counted before the call) are within the input cap (2,075 by default).",
    "output_tokens_within_cap": "Completion tokens are within the output cap (1,000 by default).",
    "cost_within_cap": "The dispute's LLM cost, all proposals counted, is within the per-dispute cap ($0.001 by default).",
    "amount_within_refundable": "A refund is not above what is still refundable on the charge (a credit: not above the disputed amount).",
}

CAP_CHECK_SPECS = [
    AssetCheckSpec(
        name,
        asset=AI_PROPOSAL,
        description=_DESCRIPTIONS[name]
        + " Evaluated per dispute in ai_proposal's step; a failing dispute is blocked in Postgres and never executed.",
        partitions_def=disputes_partitions,
    )
    for name in CAP_NAMES
]


def cap_check_evaluations(
    checked: dict[str, CheckedProposal],
    unchecked: dict[str, str],
    selected: set[AssetCheckKey] | frozenset[AssetCheckKey],
    targets: Mapping[str, AssetCheckEvaluationTargetMaterializationData] | None = None,
) -> Iterator[AssetCheckEvaluation]:
    """One evaluation per dispute and selected cap, with that dispute's figure and cap only.

    A dispute of the run with no proposal (`unchecked`: case id -> why) has nothing over a cap;
    it gets a passing evaluation that says so. Without one, Dagster leaves its planned evaluation
    "Skipped", and as the Checks list shows the latest planned partition, the list would
    contradict the detail beside it. `targets` links each verdict to the dispute's latest
    materialization (the check's Partitions tab counts only verdicts on the latest one)."""
    targets = targets or {}
    for case_id, why in unchecked.items():
        for name in CAP_NAMES:
            if AssetCheckKey(AI_PROPOSAL, name) in selected:
                yield AssetCheckEvaluation(
                    asset_key=AI_PROPOSAL, check_name=name, passed=True, partition=case_id,
                    metadata={"checked": "no proposal", "reason": why},
                    description=f"{case_id}: no proposal to check ({why})",
                )  # fmt: skip
    for case_id, proposal in checked.items():
        for result in proposal.caps:
            if AssetCheckKey(AI_PROPOSAL, result.name) not in selected:
                continue
            yield AssetCheckEvaluation(
                asset_key=AI_PROPOSAL,
                check_name=result.name,
                passed=result.passed,
                partition=case_id,
                target_materialization_data=targets.get(case_id),
                metadata={
                    "figure": float(result.figure),
                    "cap": float(result.cap),
                    "what": result.description,
                    "proposal_version": proposal.version,
                    "dispute_status": proposal.status,
                },
                description=(
                    f"{case_id}: {result.figure} within the cap {result.cap}"
                    if result.passed
                    else f"{case_id}: {result.figure} over the cap {result.cap}; the dispute is blocked and can not be executed"
                ),
            )


def latest_materializations(
    instance: DagsterInstance, keys: list[str]
) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """Each dispute's latest ai_proposal materialization (this run's, or an earlier one for a
    dispute skipped now), read in one query."""
    if not keys:
        return {}
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AI_PROPOSAL, asset_partitions=keys), limit=len(keys) * 4
    )
    targets: dict[str, AssetCheckEvaluationTargetMaterializationData] = {}
    for record in records.records:  # newest first
        partition = record.partition_key
        if partition is not None and partition not in targets:
            targets[partition] = AssetCheckEvaluationTargetMaterializationData(
                storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
            )
    return targets
