"""`dispute-platform reembed`: the re-embedding backfill from the terminal, with a progress bar.

The runs are real Dagster runs of `resolution_index` on the platform's instance (the UI shows them
and their per-bucket metadata), executed here in-process, a range of buckets per run as the asset's
backfill policy would cut them. The bar counts rows, page by page.
"""

from __future__ import annotations

import time

import click

from dispute_platform.domain.reembed import BUCKETS, BucketRange, bucket_index, run_ranges


def parse_buckets(text: str | None) -> list[int] | None:
    """`b00..b15`, `b03,b07`, `3,7` or a mix; None: every bucket."""
    if not text:
        return None
    chosen: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if ".." in part:
            first, last = (p.strip() for p in part.split("..", 1))
            chosen.update(range(_one(first), _one(last) + 1))
        elif part:
            chosen.add(_one(part))
    return sorted(chosen)


def _one(text: str) -> int:
    if text.isdigit() and int(text) < BUCKETS:
        return int(text)
    return bucket_index(text)


def run_plan(counts: dict[int, int], per_run: int) -> list[BucketRange]:
    return run_ranges(counts, per_run)


@click.command("reembed")
@click.option("--stale-only", is_flag=True, help="Only past cases not embedded by the current model (after a model change).")
@click.option("--buckets", help="Buckets to re-embed: b00..b15, b03,b07 (default: all).")
@click.option(
    "--per-run", type=click.IntRange(1, BUCKETS), default=None, help="Buckets per run (default REEMBED_BUCKETS_PER_RUN)."
)
def reembed_command(stale_only: bool, buckets: str | None, per_run: int | None) -> None:
    """Re-embed the past cases into Chroma as a batched backfill of resolution_index (Dagster runs)."""
    from dagster import DagsterInstance, materialize
    from rich.table import Table

    from dispute_platform.assets.resolution_index import build_resolution_index
    from dispute_platform.commands.progress import counted, progress_records
    from dispute_platform.commands.shell import console, fail, local_services, migrate
    from dispute_platform.definitions import build_resources
    from dispute_platform.local import database
    from dispute_platform.operations import RANGE_END, RANGE_START, STEP_TAG, TRIGGER_TAG
    from dispute_platform.settings import get_settings
    from dispute_platform.store.history import bucket_counts
    from dispute_platform.workflow.reembed import current_model_identity

    try:
        selected = parse_buckets(buckets)
    except ValueError as exc:
        fail(str(exc))
        return
    with local_services(verbose=False):
        migrate(verbose=False)
        settings = get_settings()
        per_run = per_run or settings.reembed_buckets_per_run
        identity = current_model_identity(settings.embedding_model)
        db = database(settings, maxconn=2)
        counts = bucket_counts(db, selected, stale_for=identity if stale_only else None)
        db.close()
        plan = run_plan(counts, per_run)
        total = sum(counts.values())
        if not total:
            console.print("nothing to re-embed" + (f": every past case is embedded by {identity}" if stale_only else ""))
            return
        console.print(
            f"re-embedding {total:,} past case(s) in {len(counts)} bucket(s), {len(plan)} run(s) of at most {per_run} "
            f"bucket(s), with {identity}"
        )
        resources = build_resources(settings)
        resources = {"postgres": resources["postgres"], "vectors": resources["vectors"]}
        done: dict[str, int] = {}
        runs: list[tuple[str, str, bool, float]] = []
        with DagsterInstance.get() as instance, counted("re-embedding", total=total, unit="rows", console=console) as bar:

            def on_record(record) -> None:
                p = record.progress
                done[p.bucket] = p.done
                bar.update(completed=sum(done.values()), detail=f"{p.bucket} (run {len(runs) + 1}/{len(plan)})")

            with progress_records(on_record):
                for r in plan:
                    started = time.perf_counter()
                    result = materialize(
                        [build_resolution_index(per_run)],
                        instance=instance,
                        resources=resources,
                        tags={RANGE_START: r.start, RANGE_END: r.end, STEP_TAG: "reembed", TRIGGER_TAG: "cli"},
                        run_config={
                            "ops": {"resolution_index": {"config": {"only_stale": stale_only}}},
                            # Progress is the bar; the run's own lines stay in the run log and workflow.log.
                            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
                        },
                        raise_on_error=False,
                    )
                    runs.append((f"{r.start}..{r.end}", result.run_id, result.success, time.perf_counter() - started))
                    if not result.success:
                        break
        table = Table(title="re-embedding runs")
        for column in ("buckets", "run id", "result", "seconds"):
            table.add_column(column)
        for span, run_id, ok, seconds in runs:
            table.add_row(span, run_id, "ok" if ok else "[red]failed[/red]", f"{seconds:.1f}")
        console.print(table)
        seconds = sum(r[3] for r in runs)
        console.print(
            f"{sum(done.values()):,} row(s) in {seconds:.1f}s ({sum(done.values()) / seconds if seconds else 0:,.0f} rows/s)"
        )
        failed = [r for r in runs if not r[2]]
        if failed:
            fail(f"run {failed[0][1]} over {failed[0][0]} failed; see it in the Dagster UI (Runs) and re-execute it")
