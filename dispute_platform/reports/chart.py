"""The cost report as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import base64
from pathlib import Path

import polars as pl

from dispute_platform.reports.costs import CostReport


def render_cost_chart(report: CostReport, by_day_model: pl.DataFrame, path: Path) -> Path:
    """Two panels: LLM cost per day stacked by model; disputes per day with the mean and p95
    cost per dispute. Written to `path` (its folder is created)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, constrained_layout=True)
    window = f"since {report.since.isoformat()}" if report.since else "all time"
    fig.suptitle(f"LLM cost per day ({window})", fontsize=13)
    if report.empty:
        top.text(0.5, 0.5, "no proposals in this window", ha="center", va="center", transform=top.transAxes)
        bottom.axis("off")
    else:
        days = by_day_model["day"].to_list()
        labels = [d.isoformat() for d in days]
        x = list(range(len(days)))
        base = [0.0] * len(days)
        for model in [c for c in by_day_model.columns if c != "day"]:
            values = by_day_model[model].to_list()
            top.bar(x, values, bottom=base, label=model, width=0.7)
            base = [b + v for b, v in zip(base, values, strict=True)]
        top.set_ylabel("LLM cost (USD)")
        top.legend(title="model", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        top.grid(axis="y", alpha=0.3)

        per_day = report.by["day"]
        index = {d: i for i, d in enumerate(days)}
        xs = [index[d] for d in per_day["day"].to_list()]
        bottom.bar(xs, per_day["disputes"].to_list(), color="#c7d7ea", width=0.7, label="disputes")
        bottom.set_ylabel("disputes")
        twin = bottom.twinx()
        twin.plot(xs, per_day["cost_mean_usd"].to_list(), marker="o", color="#1f4e79", label="mean per dispute")
        twin.plot(xs, per_day["cost_p95_usd"].to_list(), marker="^", color="#c0504d", label="p95 per dispute")
        twin.set_ylabel("USD per dispute")
        twin.set_ylim(bottom=0)
        handles = bottom.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        bottom.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="upper left", bbox_to_anchor=(1.08, 1.0))
        bottom.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
