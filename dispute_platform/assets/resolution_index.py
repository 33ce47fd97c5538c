"""The Chroma index over the past cases, rebuilt as a backfill: one partition per hash bucket of
the case id (b00..b63), several buckets per run.

`historical_resolutions` keeps the index current as cases arrive (it embeds what is new or
stale); `resolution_index` re-embeds whole buckets: weekly by schedule, at once when the
embedding model changes (sensor), or whenever an operator launches a backfill from the UI or
`dispute-platform reembed`.
"""

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    BackfillPolicy,
    Config,
    MaterializeResult,
    StaticPartitionsDefinition,
    asset,
)
from pydantic import Field

from dispute_platform.assets.knowledge import historical_resolutions
from dispute_platform.domain.reembed import BUCKET_KEYS, BUCKETS, bucket_index, markdown_table, results_frame, run_summary
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.store.history import bucket_counts
from dispute_platform.workflow.reembed import PAGE_SIZE, PageProgress, prune_orphans, reembed_bucket

resolution_buckets = StaticPartitionsDefinition(BUCKET_KEYS)


class ResolutionIndexConfig(Config):
    only_stale: bool = Field(
        default=False,
        description="Encode only the rows not embedded by the current model (what a model change needs). "
        "False re-embeds every row of each bucket (the weekly rebuild).",
    )
    prune: bool = Field(default=True, description="Delete Chroma entries whose case is no longer in Postgres.")
    page_size: int = Field(default=PAGE_SIZE, ge=16, le=4000, description="Rows per keyset page and encoder call.")


def build_resolution_index(buckets_per_run: int) -> AssetsDefinition:
    """The asset, its backfills cut into runs of `buckets_per_run` buckets (REEMBED_BUCKETS_PER_RUN):
    a full backfill is BUCKETS / per_run runs, each paying ~5 s of imports (torch) once."""
    return asset(
        name="resolution_index",
        partitions_def=resolution_buckets,
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=buckets_per_run),
        group_name="knowledge",
        deps=[historical_resolutions],
        kinds={"chroma", "postgres", "polars"},
        pool="chroma_writer",
        description=f"Past cases re-embedded into Chroma dispute_resolutions, one partition per hash bucket of the "
        f"case id ({BUCKETS} buckets, {buckets_per_run} per backfill run). Postgres historical_resolutions is the "
        "source of truth; every vector carries the model identity (name@weights) that made it.",
    )(reembed_buckets)


def reembed_buckets(
    context: AssetExecutionContext, config: ResolutionIndexConfig, postgres: PostgresResource, vectors: VectorStoreResource
) -> MaterializeResult:
    db = postgres.db
    keys = list(context.partition_keys)
    buckets = [bucket_index(k) for k in keys]
    identity = vectors.embedder.identity
    totals = bucket_counts(db, buckets, stale_for=identity if config.only_stale else None)
    grand_total = sum(totals.values())
    pruned = prune_orphans(db, vectors, buckets) if config.prune else {}
    context.log.info(
        f"re-embedding {grand_total:,} past case(s) in {len(keys)} bucket(s) {keys[0]}..{keys[-1]} with {identity}"
        + (" (stale rows only)" if config.only_stale else "")
        + (f"; pruned {sum(pruned.values())} orphan(s)" if pruned else "")
    )
    results = []
    done_before = 0
    for position, (key, bucket) in enumerate(zip(keys, buckets, strict=True), start=1):

        def on_page(p: PageProgress, position: int = position, before: int = done_before) -> None:
            rate = p.done / p.seconds if p.seconds > 0 else 0.0
            context.log.info(
                f"{p.bucket}: {p.done:,}/{p.total:,} rows ({rate:,.0f} rows/s); run {before + p.done:,}/{grand_total:,} "
                f"rows, bucket {position}/{len(keys)}"
            )

        result = reembed_bucket(
            db,
            vectors,
            bucket,
            only_stale=config.only_stale,
            page_size=config.page_size,
            total=totals.get(bucket, 0),
            pruned=pruned.get(bucket, 0),
            on_page=on_page,
        )
        done_before += result.embedded
        results.append(result)
        context.add_asset_metadata(
            {
                "rows": result.rows,
                "embedded": result.embedded,
                "pruned": result.pruned,
                "seconds": round(result.seconds, 3),
                "rows_per_second": result.rows_per_second,
                "model": result.model,
                "only_stale": config.only_stale,
            },
            partition_key=key,
        )
    frame = results_frame(results)
    summary = run_summary(frame)
    context.log.info(
        f"re-embedded {summary['embedded']:,} row(s) in {summary['buckets']} bucket(s), {summary['seconds']} s "
        f"({summary['rows_per_s']:,} rows/s)\n" + markdown_table(frame)
    )
    return MaterializeResult()
