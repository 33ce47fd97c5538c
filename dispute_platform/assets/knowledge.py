"""Unpartitioned knowledge assets: the company's policies and the past resolutions, in Chroma."""

from collections import Counter
from pathlib import Path

from dagster import AssetExecutionContext, AssetsDefinition, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.store import history
from dispute_platform.workflow.calibration import refit
from dispute_platform.workflow.knowledge import embed_history, load_policies, load_seed_history

GROUP = "knowledge"


def build_company_policies(policies_dir: Path) -> AssetsDefinition:
    """The policies asset over the .docx files in `policies_dir` (POLICIES_DIR)."""

    @asset(
        name="company_policies",
        group_name=GROUP,
        kinds={"chroma", "docx"},
        pool="chroma_writer",
        description="policies/*.docx cut along their numbered sections into the Chroma collection company_policies.",
    )
    def company_policies(context: AssetExecutionContext, vectors: VectorStoreResource) -> MaterializeResult:
        return embed_policies(vectors, policies_dir)

    return company_policies


def embed_policies(vectors: VectorStoreResource, policies_dir: Path) -> MaterializeResult:
    """One materialization of `company_policies`."""
    chunks = load_policies(vectors, policies_dir)
    by_policy = Counter(f"{c.policy_id} {c.title}" for c in chunks)
    table = "\n".join(f"| {name} | {n} |" for name, n in sorted(by_policy.items()))
    return MaterializeResult(
        metadata={
            "chunks": len(chunks),
            "policies": len(by_policy),
            "embedding_model": vectors.embedder.identity,
            "sections": MetadataValue.md("| policy | sections |\n|---|---|\n" + table),
        }
    )


class HistoryConfig(Config):
    full: bool = Field(default=False, description="Re-embed every past case, not only new or stale ones.")


@asset(
    group_name=GROUP,
    kinds={"chroma", "postgres"},
    pool="chroma_writer",
    description="Past resolved disputes (seed set, CFPB imports, every executed resolution) from Postgres "
    "into the Chroma collection dispute_resolutions, one entry per case.",
)
def historical_resolutions(
    context: AssetExecutionContext, config: HistoryConfig, postgres: PostgresResource, vectors: VectorStoreResource
) -> MaterializeResult:
    db = postgres.db
    seeded = load_seed_history(db)
    stats = embed_history(
        db,
        vectors,
        only_stale=not config.full,
        progress=lambda s: context.log.info(f"embedded {s.embedded} past cases in {s.batches} batches"),
    )
    counts = db.transact(history.historical_counts)
    table = "\n".join(f"| {r['source']} | {r['dispute_type']} | {r['n']} |" for r in counts)
    return MaterializeResult(
        metadata={
            "seed_records": seeded,
            "embedded_now": stats.embedded,
            "collection_size": vectors.count(vectors.resolutions_collection),
            "embedding_model": vectors.embedder.identity,
            "by_source_and_type": MetadataValue.md("| source | type | cases |\n|---|---|---|\n" + table),
        }
    )


@asset(
    group_name=GROUP,
    kinds={"postgres", "chroma"},
    deps=[historical_resolutions],
    description="Calibration of proposal confidence, refitted from the past cases in Postgres historical_resolutions "
    "(a held-back sample put to the precedent vote, isotonic map per side) and from reviewers' decisions; stored in "
    "Postgres proposal_calibrations, where every proposal reads the newest fit. The calibration_sensor refits it "
    "whenever the history (or the embedding model) changes.",
)
def proposal_calibration(
    context: AssetExecutionContext, postgres: PostgresResource, vectors: VectorStoreResource
) -> MaterializeResult:
    calibration, version = refit(postgres.db, vectors, run_id=context.run_id)
    maps = "\n".join(
        f"| {key} | {m.n} | {m.rate:.2f} | "
        + ", ".join(f"{lo:.2f}-{hi:.2f}: {v:.2f}" for lo, hi, v in zip(m.lows, m.highs, m.values, strict=True))
        + " |"
        for key, m in calibration.maps.items()
    )
    reliability = "\n".join(
        f"| {key} | {row.band} | {row.n} | {row.mean_confidence if row.mean_confidence is not None else ''} | "
        f"{row.accuracy if row.accuracy is not None else ''} |"
        for key, rows in calibration.reliability.items()
        for row in rows
        if row.n
    )
    return MaterializeResult(
        metadata={
            "calibration_id": calibration.calibration_id,
            "history_version": version,
            "history_cases": calibration.history_cases,
            "held_back": calibration.held_back,
            "money_back_rate": calibration.money_back_rate,
            "maps": MetadataValue.md("| key | outcomes | rate right | raw -> calibrated |\n|---|---|---|---|\n" + maps),
            "raw_reliability": MetadataValue.md(
                "| key | raw confidence | n | mean | accuracy |\n|---|---|---|---|---|\n" + reliability
            ),
        }
    )
