"""`dispute-platform evaluate`: replay CFPB complaints through the proposal stage and score them
(dispute_platform/evaluation/). Touches no queue, no database and no money."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("evaluate")
@click.option(
    "--complaints",
    "complaints",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV in the CFPB Consumer Complaint Database format: the complaints to replay.",
)
@click.option(
    "--history",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV in the same format: past cases for retrieval (an evaluation collection, never the live one).",
)
@click.option(
    "--split",
    type=float,
    help="Use this share of the complaints file as history (deterministic, by complaint id) and evaluate the rest.",
)
@click.option("--provider", type=click.Choice(["precedent", "openai"]), default="precedent", show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".dispute_platform/evaluation"),
    show_default=True,
    help="Folder for report.json, report.md and results.jsonl.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Read only the first N rows of the complaints file.")
@click.option(
    "--billing-only", is_flag=True, help="Only billing disputes (Issue: a purchase on the statement, or fees or interest)."
)
def evaluate_command(
    complaints: Path,
    history: Path | None,
    split: float | None,
    provider: str,
    out_dir: Path,
    limit: int | None,
    billing_only: bool,
) -> None:
    """Replay CFPB complaints as disputes and compare the proposals with the real outcomes."""
    from dispute_platform.commands.shell import console
    from dispute_platform.evaluation.run import EvaluationError, EvaluationOptions, evaluate

    options = EvaluationOptions(
        complaints=complaints,
        history=history,
        split=split,
        provider=provider,
        out_dir=out_dir,
        limit=limit,
        billing_only=billing_only,
    )
    try:
        run = evaluate(options, progress=lambda message: console.print(f"[dim]{message}[/dim]"))
    except EvaluationError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    report = run.report
    m, base, counts = report["metrics"], report["baseline"], report["counts"]

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    console.print(
        f"evaluated {counts['evaluated']} disputes ({counts['truth']['money_back']} money back, "
        f"{counts['truth']['no_money']} no money); {counts['bad_rows_and_errors']} bad rows or errors"
    )
    console.print(
        f"accuracy {pct(m['accuracy'])} (majority baseline {pct(base['accuracy'])}), balanced accuracy "
        f"{pct(m['balanced_accuracy'])} (baseline {pct(base['balanced_accuracy'])}), escalation rate {pct(m['escalation_rate'])}"
    )
    knn = report.get("knn_baseline")
    if knn:
        console.print(
            f"kNN baseline (k={knn['k']}): accuracy {pct(knn['accuracy'])}, balanced accuracy {pct(knn['balanced_accuracy'])}; "
            f"accuracy on the {m['decided']} decided disputes {pct(m['accuracy_on_decided'])}"
        )
    tokens, wb = report["tokens"]["input"], report["would_be_cost_usd"]
    console.print(
        f"input tokens mean {tokens['mean']} p95 {tokens['p95']} max {tokens['max']}; would-be {wb['model']} cost "
        f"mean ${wb['mean']} max ${wb['max']}; stopped by a cap: {report['caps']['stopped']}"
    )
    for path in run.files.values():
        console.print(f"wrote {path}")
