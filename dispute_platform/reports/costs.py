"""What the model calls cost: per day, dispute type, model and customer segment. Pure polars.

The input is one row per proposal (a model call, or a reply served from the cache) joined with
its dispute's type, segment and current status; `load_calls` reads it from Postgres. Figures:

- disputes: distinct disputes with at least one proposal in the group.
- proposals, cache_hits, cache_hit_rate: proposals, those served from the cache, and their share.
- calls: model requests the provider may bill, over the group's proposals: a re-ask after an
  invalid reply and an attempt that timed out count, a refused (429/5xx) attempt and a cache hit
  do not.
- tokens_in, tokens_out, llm_cost_usd: sums over the group's proposals.
- llm_cost_estimated_usd: the part of llm_cost_usd that is an estimate (requests sent but never
  answered: their input at our own token count; their output is unknown and not included).
- cost_mean/p95/max_usd: over the group's disputes, a dispute's cost being the sum of its
  proposals' costs in the group (regenerated proposals count). p95 interpolates linearly, like
  Postgres' percentile_cont(0.95).
- blocked: disputes whose status is `blocked` (a proposal over a token or cost cap).

A day is the UTC date of the proposal: cost is incurred when the model is asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import polars as pl

DIMENSIONS: dict[str, str] = {"day": "day", "dispute_type": "dispute type", "model": "model", "segment": "segment"}
CALL_SCHEMA = {
    "case_id": pl.String,
    "model": pl.String,
    "input_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "cost_usd": pl.Float64,
    "requests": pl.Int64,
    "estimated_cost_usd": pl.Float64,
    "cache_hit": pl.Boolean,
    "created_at": pl.Datetime("us", "UTC"),
    "dispute_type": pl.String,
    "segment": pl.String,
    "status": pl.String,
}
METRICS = [
    "disputes", "proposals", "calls", "tokens_in", "tokens_out", "llm_cost_usd", "llm_cost_estimated_usd",
    "cost_mean_usd", "cost_p95_usd", "cost_max_usd", "cache_hits", "cache_hit_rate", "blocked",
]  # fmt: skip


def calls_frame(rows: Sequence[dict]) -> pl.DataFrame:
    """Rows (dicts from SQL) as the typed frame the report works on."""
    cleaned = [
        {
            **{k: row.get(k) for k in CALL_SCHEMA},
            "cost_usd": float(row["cost_usd"] or 0),
            "requests": int(row["requests"] if row.get("requests") is not None else (0 if row.get("cache_hit") else 1)),
            "estimated_cost_usd": float(row.get("estimated_cost_usd") or 0),
            "dispute_type": row.get("dispute_type") or "unknown",
            "segment": row.get("segment") or "unknown",
        }
        for row in rows
    ]
    return pl.DataFrame(cleaned, schema=CALL_SCHEMA)


def _with_day(calls: pl.DataFrame) -> pl.DataFrame:
    return calls.with_columns(pl.col("created_at").dt.convert_time_zone("UTC").dt.date().alias("day"))


def aggregate(calls: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """The report's figures for every group of `keys` (no keys: one row for everything)."""
    calls = _with_day(calls) if "day" not in calls.columns else calls
    per_dispute = calls.group_by([*keys, "case_id"]).agg(
        pl.len().alias("proposals"),
        pl.col("requests").sum().alias("calls"),
        pl.col("estimated_cost_usd").sum().alias("estimated_cost"),
        pl.col("cache_hit").sum().alias("cache_hits"),
        pl.col("input_tokens").sum().alias("tokens_in"),
        pl.col("output_tokens").sum().alias("tokens_out"),
        pl.col("cost_usd").sum().alias("cost"),
        (pl.col("status") == "blocked").any().alias("blocked"),
    )
    figures = [
        pl.len().alias("disputes"),
        pl.col("proposals").sum().alias("proposals"),
        pl.col("calls").sum().alias("calls"),
        pl.col("tokens_in").sum().alias("tokens_in"),
        pl.col("tokens_out").sum().alias("tokens_out"),
        pl.col("cost").sum().alias("llm_cost_usd"),
        pl.col("estimated_cost").sum().alias("llm_cost_estimated_usd"),
        pl.col("cost").mean().alias("cost_mean_usd"),
        pl.col("cost").quantile(0.95, interpolation="linear").alias("cost_p95_usd"),
        pl.col("cost").max().alias("cost_max_usd"),
        pl.col("cache_hits").sum().alias("cache_hits"),
        (pl.col("cache_hits").sum() / pl.col("proposals").sum()).alias("cache_hit_rate"),
        pl.col("blocked").sum().alias("blocked"),
    ]
    if keys:
        grouped = per_dispute.group_by(list(keys)).agg(figures).sort(list(keys))
    else:
        grouped = per_dispute.select(figures)
    return grouped.with_columns(
        pl.col(["disputes", "proposals", "calls", "tokens_in", "tokens_out", "cache_hits", "blocked"]).cast(pl.Int64)
    )


@dataclass(frozen=True)
class CostReport:
    since: date | None
    total: pl.DataFrame  # one row
    by: dict[str, pl.DataFrame]  # dimension -> figures per value
    detail: pl.DataFrame  # day x dispute type x model x segment

    @property
    def empty(self) -> bool:
        return self.detail.height == 0

    def long(self) -> pl.DataFrame:
        """Every rollup in one frame: dimension, value, figures (the total as dimension 'all')."""
        parts = [self.total.select(pl.lit("all").alias("dimension"), pl.lit("all").alias("value"), *METRICS)]
        for dim, frame in self.by.items():
            parts.append(frame.select(pl.lit(dim).alias("dimension"), pl.col(dim).cast(pl.String).alias("value"), *METRICS))
        return pl.concat(parts)


def build_report(calls: pl.DataFrame, since: date | None = None) -> CostReport:
    calls = _with_day(calls)
    if since is not None:
        calls = calls.filter(pl.col("day") >= since)
    return CostReport(
        since=since,
        total=aggregate(calls, []),
        by={dim: aggregate(calls, [dim]) for dim in DIMENSIONS},
        detail=aggregate(calls, list(DIMENSIONS)),
    )


def cost_by_day_and_model(calls: pl.DataFrame) -> pl.DataFrame:
    """LLM cost per day per model, one column per model (what the chart stacks)."""
    calls = _with_day(calls)
    if calls.height == 0:
        return pl.DataFrame({"day": []}, schema={"day": pl.Date})
    return (
        calls.group_by(["day", "model"]).agg(pl.col("cost_usd").sum())
        .pivot(on="model", index="day", values="cost_usd").fill_null(0.0).sort("day")
    )  # fmt: skip


# --- presentation (plain text; the asset and the CLI render it) -------------------------------


def formatted(frame: pl.DataFrame) -> pl.DataFrame:
    """Figures as display strings: money to 6 decimals, rates as percentages, counts with commas."""
    columns = []
    for name in frame.columns:
        col = pl.col(name)
        if name.endswith("_usd"):
            columns.append(col.map_elements(lambda v: "-" if v is None else f"{v:.6f}", return_dtype=pl.String).alias(name))
        elif name == "cache_hit_rate":
            columns.append(col.map_elements(lambda v: "-" if v is None else f"{v:.1%}", return_dtype=pl.String).alias(name))
        elif frame.schema[name] in (pl.Int64, pl.Int32, pl.UInt32, pl.UInt64):
            columns.append(col.map_elements(lambda v: f"{v:,}", return_dtype=pl.String).alias(name))
        else:
            columns.append(col.cast(pl.String).alias(name))
    return frame.select(columns)


def markdown(frame: pl.DataFrame) -> str:
    shown = formatted(frame)
    head = "| " + " | ".join(shown.columns) + " |\n|" + "---|" * len(shown.columns)
    rows = "\n".join("| " + " | ".join(row) + " |" for row in shown.iter_rows())
    return head + ("\n" + rows if rows else "")


def report_markdown(report: CostReport) -> str:
    window = f"since {report.since.isoformat()}" if report.since else "all time"
    if report.empty:
        return f"No proposals {window}."
    parts = [f"**LLM cost {window}**", markdown(report.total)]
    for dim, title in DIMENSIONS.items():
        parts += [f"**Per {title}**", markdown(report.by[dim])]
    return "\n\n".join(parts)


def since_start(since: date | None) -> datetime | None:
    """The first instant of `since` (UTC), for the SQL filter."""
    return datetime.combine(since, time.min, tzinfo=UTC) if since else None
