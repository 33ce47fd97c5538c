"""Reports over the platform's state, as assets: the LLM cost report."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)
from pydantic import Field

from dispute_platform.reports.chart import png_data_uri, render_cost_chart
from dispute_platform.reports.costs import DIMENSIONS, build_report, cost_by_day_and_model, report_markdown
from dispute_platform.reports.queries import load_calls
from dispute_platform.resources.postgres import PostgresResource

_TYPES = {pl.Int64: "int", pl.Float64: "float", pl.Boolean: "bool"}


def metadata_table(frame: pl.DataFrame) -> MetadataValue:
    """A polars frame as a Dagster table (dates become ISO strings)."""
    schema = TableSchema(columns=[TableColumn(name, _TYPES.get(dtype, "string")) for name, dtype in frame.schema.items()])
    records = [
        TableRecord({k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items() if v is not None})
        for row in frame.iter_rows(named=True)
    ]
    return MetadataValue.table(records=records, schema=schema)


def report_window(days: int, today: date | None = None) -> date | None:
    """The first day a report over the last `days` days covers (0: everything)."""
    if days <= 0:
        return None
    return (today or datetime.now(UTC).date()) - timedelta(days=days - 1)


def build_cost_report(default_days: int, folder: Path) -> AssetsDefinition:
    """The cost report asset: over the last `default_days` days unless its run config says otherwise
    (COST_REPORT_DAYS), its chart written to `folder`."""

    class CostReportConfig(Config):
        days: int = Field(default=default_days, ge=0, description="Days covered, today included (0: all).")

    @asset(
        name="cost_report",
        group_name="reports",
        kinds={"postgres", "polars"},
        deps=[AssetKey("ai_proposal")],
        description="LLM cost per day, dispute type, model and customer segment (disputes, tokens in and out, cost, "
        "mean/p95/max per dispute, cache hit rate, disputes blocked by a cap), from Postgres with polars; "
        "tables and a chart in the metadata.",
    )
    def cost_report(context: AssetExecutionContext, config: CostReportConfig, postgres: PostgresResource) -> MaterializeResult:
        return report_costs(context, config.days, postgres, folder)

    return cost_report


def report_costs(context: AssetExecutionContext, days: int, postgres: PostgresResource, folder: Path) -> MaterializeResult:
    """One materialization of `cost_report`."""
    since = report_window(days)
    calls = load_calls(postgres.db, since)
    report = build_report(calls, since)
    chart = render_cost_chart(report, cost_by_day_and_model(calls), folder / f"cost_report-{context.run_id[:8]}.png")
    (folder / "cost_report.png").write_bytes(chart.read_bytes())  # the latest, at a stable path
    total = report.total.row(0, named=True) if report.total.height else {}
    context.log.info(
        f"cost report {'since ' + since.isoformat() if since else 'all time'}: {total.get('disputes', 0)} dispute(s), "
        f"${total.get('llm_cost_usd') or 0:.6f}; chart {chart}"
    )
    metadata: dict = {
        "since": since.isoformat() if since else "all time",
        "disputes": int(total.get("disputes") or 0),
        "llm_cost_usd": float(total.get("llm_cost_usd") or 0.0),
        "llm_cost_estimated_usd": float(total.get("llm_cost_estimated_usd") or 0.0),
        "model_requests": int(total.get("calls") or 0),
        "cost_mean_usd": float(total.get("cost_mean_usd") or 0.0),
        "cost_p95_usd": float(total.get("cost_p95_usd") or 0.0),
        "cost_max_usd": float(total.get("cost_max_usd") or 0.0),
        "tokens_in": int(total.get("tokens_in") or 0),
        "tokens_out": int(total.get("tokens_out") or 0),
        "cache_hit_rate": float(total.get("cache_hit_rate") or 0.0),
        "blocked_by_cap": int(total.get("blocked") or 0),
        "report": MetadataValue.md(report_markdown(report)),
        "chart": MetadataValue.md(f"![LLM cost per day]({png_data_uri(chart)})"),
        "chart_path": MetadataValue.path(str(chart)),
    }
    for dim in DIMENSIONS:
        metadata[f"by_{dim}"] = metadata_table(report.by[dim])
    return MaterializeResult(metadata=metadata)
