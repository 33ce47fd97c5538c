"""Unpartitioned knowledge assets: the company's policies and the past resolutions, in Chroma."""


from collections import Counter

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.settings import get_settings
from dispute_platform.store import repo
from dispute_platform.workflow.knowledge import embed_history, load_policies, load_seed_history

GROUP = "knowledge"


@asset(
    group_name=GROUP,
    kinds={"chroma", "docx"},
    pool="chroma_writer",
    description="policies/*.docx cut along their numbered sections into the Chroma collection company_policies.",
)
def company_policies(context: AssetExecutionContext, vectors: VectorStoreResource) -> MaterializeResult:
    chunks = load_policies(vectors, get_settings().policies_dir)
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
    counts = db.transact(repo.historical_counts)
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
