"""`dispute-platform costs [--since DATE]`: the cost report's tables in the terminal."""

from __future__ import annotations

from datetime import date, datetime

import click
import polars as pl
from rich.console import Console
from rich.table import Table

from dispute_platform.reports.costs import DIMENSIONS, CostReport, formatted

_HEADERS = {
    "disputes": "disputes", "proposals": "proposals", "calls": "model requests", "tokens_in": "tokens in",
    "tokens_out": "tokens out", "llm_cost_usd": "LLM cost $", "llm_cost_estimated_usd": "of which estimated $",
    "cost_mean_usd": "mean $/dispute", "cost_p95_usd": "p95 $", "cost_max_usd": "max $",
    "cache_hits": "cache hits", "cache_hit_rate": "hit rate", "blocked": "blocked (cap)",
}  # fmt: skip


def rich_table(frame: pl.DataFrame, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    shown = formatted(frame)
    for name in shown.columns:
        if name in _HEADERS:
            table.add_column(_HEADERS[name], justify="right")
        else:  # the label column (day, type, model, segment) is never cut
            width = max([len(name), *(len(v) for v in shown[name].to_list())])
            table.add_column(name.replace("_", " "), no_wrap=True, min_width=width)
    for row in shown.iter_rows():
        table.add_row(*row)
    return table


def print_report(report: CostReport, console: Console, dimensions: list[str]) -> None:
    window = f"since {report.since.isoformat()}" if report.since else "all time"
    if report.empty:
        console.print(f"no proposals {window}")
        return
    console.print(rich_table(report.total, f"LLM cost, {window}"))
    for dim in dimensions:
        console.print(rich_table(report.by[dim], f"per {DIMENSIONS[dim]}"))


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-01-31") from None


@click.command("costs")
@click.option("--since", callback=_date, help="First day (UTC, YYYY-MM-DD) to count; default: all time.")
@click.option(
    "--by",
    "by",
    multiple=True,
    type=click.Choice(list(DIMENSIONS)),
    help="Only these breakdowns (repeatable); default: all four.",
)
def costs_command(since: date | None, by: tuple[str, ...]) -> None:
    """LLM cost per day, dispute type, model and segment: disputes, tokens, cost (mean, p95, max per
    dispute), cache hit rate and disputes blocked by a cap. The same figures as the cost_report asset."""
    from dispute_platform.commands.shell import console, local_services
    from dispute_platform.local import database
    from dispute_platform.reports.costs import build_report
    from dispute_platform.reports.queries import load_calls
    from dispute_platform.settings import get_settings

    with local_services(verbose=False):
        db = database(get_settings(), maxconn=1)
        try:
            report = build_report(load_calls(db, since), since)
        finally:
            db.close()
    print_report(report, console, list(by) or list(DIMENSIONS))
