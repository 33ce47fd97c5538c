"""`dispute-platform import-cfpb FILE`: complaints in the CFPB Consumer Complaint Database format
become past cases: Postgres `historical_resolutions` (the source of truth) and the Chroma
collection `dispute_resolutions` (the index), one entry per case id, so a re-import replaces and
never duplicates. Parsing and mapping are pure (datasets/cfpb.py); this module only moves batches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from dispute_platform.datasets.cfpb import (
    REQUIRED_FOR_OUTCOME,
    RowProblem,
    UnusableComplaint,
    read_complaints,
    to_historical,
)
from dispute_platform.domain.knowledge import HistoricalResolution

DEFAULT_BATCH = 256


@dataclass
class ImportSummary:
    rows_read: int = 0
    imported: int = 0  # distinct cases written (a case repeated in the file counts once)
    written: int = 0  # records written, repeats included
    repeated_in_file: int = 0
    batches: int = 0
    skipped: list[RowProblem] = field(default_factory=list)
    by_type: Counter = field(default_factory=Counter)  # of records written
    by_outcome: Counter = field(default_factory=Counter)  # of records written
    cache_entries_dropped: int = 0


def import_cfpb_file(
    path: Path,
    db: Any,
    vectors: Any,
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Stream the file in batches: each batch goes to Postgres, then Chroma, then is marked as
    embedded (a crash between the two leaves rows that the next `historical_resolutions`
    materialisation embeds). Raises `CfpbFormatError` when the file is not in the bureau's
    format; a bad row is recorded in the summary and skipped."""
    from dispute_platform.store import history, repo

    summary = ImportSummary()
    seen: set[str] = set()
    batch: dict[str, HistoricalResolution] = {}
    identity = vectors.embedder.identity

    def flush() -> None:
        if not batch:
            return
        records = list(batch.values())
        types = sorted({r.dispute_type for r in records})
        db.transact(lambda cur: history.upsert_historical(cur, records))
        vectors.upsert_resolutions(records)

        def settle(cur: Any) -> int:
            history.mark_embedded(cur, [r.case_id for r in records], identity)
            # New precedent changes what a model would answer for these types.
            return sum(repo.cache_invalidate_type(cur, t) for t in types)

        summary.cache_entries_dropped += db.transact(settle)
        summary.written += len(records)
        summary.by_type.update(r.dispute_type for r in records)
        summary.by_outcome.update(r.outcome for r in records)
        summary.batches += 1
        batch.clear()
        if progress:
            progress(summary)

    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        for item in read_complaints(fh, required=REQUIRED_FOR_OUTCOME):
            summary.rows_read += 1
            if isinstance(item, RowProblem):
                summary.skipped.append(item)
                continue
            try:
                record = to_historical(item)
            except UnusableComplaint as exc:
                summary.skipped.append(RowProblem(row=item.row, line=item.line, complaint_id=item.complaint_id, reason=str(exc)))
                continue
            if record.case_id in seen:
                summary.repeated_in_file += 1  # the later row replaces the earlier (same batch or not)
            seen.add(record.case_id)
            batch[record.case_id] = record
            if len(batch) >= batch_size:
                flush()
        flush()
    summary.imported = len(seen)
    return summary


@click.command("import-cfpb")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--batch-size",
    default=DEFAULT_BATCH,
    show_default=True,
    type=click.IntRange(1, 4000),
    help="Cases per Postgres transaction and embedding batch.",
)
@click.option(
    "--show-skipped", default=20, show_default=True, type=click.IntRange(min=0), help="List at most this many skipped rows."
)
def import_cfpb_command(file: Path, batch_size: int, show_skipped: int) -> None:
    """Import CFPB complaints (the bureau's CSV format) as past resolutions: Postgres and Chroma."""
    from rich.table import Table

    from dispute_platform.commands.shell import console, fail, local_services, migrate
    from dispute_platform.datasets.cfpb import CfpbFormatError
    from dispute_platform.local import database
    from dispute_platform.resources.vectors import VectorStoreResource
    from dispute_platform.settings import get_settings

    with local_services():
        migrate()
        settings = get_settings()
        # The live index, configured as `definitions.build_resources` configures it (without
        # importing the whole code location for one resource).
        vectors = VectorStoreResource.from_settings(settings)
        db = database(get_settings())

        def report(s: ImportSummary) -> None:
            console.print(
                f"batch {s.batches}: {s.rows_read} rows read, {s.written} cases written "
                f"(Postgres + Chroma {vectors.resolutions_collection}), {len(s.skipped)} skipped"
            )

        try:
            console.print(f"importing {file} (embedding with {vectors.embedder.identity})")
            summary = import_cfpb_file(file, db, vectors, batch_size=batch_size, progress=report)
        except CfpbFormatError as exc:
            fail(f"{file}: {exc}")
            return
        finally:
            db.close()

    table = Table(title=f"CFPB import of {file.name}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("rows read", str(summary.rows_read))
    table.add_row("imported (distinct cases)", str(summary.imported))
    table.add_row("repeated complaint ids (later row kept)", str(summary.repeated_in_file))
    table.add_row("skipped", str(len(summary.skipped)))
    for outcome, n in summary.by_outcome.most_common():
        table.add_row(f"  outcome: {outcome}", str(n))
    for dispute_type, n in summary.by_type.most_common():
        table.add_row(f"  type: {dispute_type}", str(n))
    table.add_row("cached proposals dropped", str(summary.cache_entries_dropped))
    console.print(table)
    if summary.skipped:
        console.print(f"[yellow]skipped {len(summary.skipped)} row(s):[/yellow]")
        for problem in summary.skipped[:show_skipped]:
            console.print(f"  {problem.describe()}")
        if len(summary.skipped) > show_skipped:
            console.print(f"  ... and {len(summary.skipped) - show_skipped} more")
