"""The evaluation report: figures from the per-dispute results (a dict, written as report.json)
and its Markdown rendering (report.md). Pure functions."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from dispute_platform.domain.calibration import ProposalCalibration, expected_calibration_error, reliability_table
from dispute_platform.evaluation import metrics
from dispute_platform.evaluation.results import DisputeResult, Problem

MAX_LISTED_PROBLEMS = 500
ACTION_COLUMNS = ("full_refund", "partial_refund", "credit", "deny", "escalate")

MAPPING_NOTES = [
    "truth: 'Closed with monetary relief' = money_back; 'Closed with explanation', 'Closed with non-monetary relief' "
    "(and the older 'Closed without relief') = no_money; rows with any other response have no outcome and are skipped.",
    "prediction: full_refund, partial_refund, credit = money_back; deny = no_money; escalate and a proposal stopped by "
    "a cap pay nothing automatically and count as no_money (escalation rate and accuracy on decided disputes reported apart).",
    "dispute: the complaint becomes a synthetic CRM case / consumer account (segment smb, good standing) / one settled "
    "card charge 10 days before 'Date received' of the narrative's one clear $ amount (else a nominal 100.00 USD), "
    "type mapped from Issue / Sub-issue / narrative keywords (datasets/cfpb.py map_dispute_type).",
    "baseline: always predict the majority outcome of the history (of the evaluated set when there is no history); "
    "kNN baseline: the similarity-weighted vote of the nearest past cases of any type, balanced against the history's "
    "money-back rate, computed in the same run over the same vectors.",
    "basis: what determined a proposal: policy (the rules decided from the records), precedent (the vote of similar "
    "past cases where the rules could not decide), none (escalated for want of a decision). Confidence is calibrated "
    "on the history (isotonic, held-back past cases) where a map exists for the basis; reliability: accuracy per "
    "confidence band over the decided disputes.",
    "would-be cost: gpt-4o-mini at $0.15 / $0.60 per 1M input / output tokens, the prompt's o200k_base input tokens "
    "and 250 output tokens; the cached variant bills at $0.075 per 1M the prefix (>= 1,024 tokens, 128-token steps) "
    "shared with an earlier prompt of the run.",
]


def _f(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _money(values: Sequence[Decimal]) -> dict[str, str | None]:
    if not values:
        return {"mean": None, "max": None, "total": None}
    total = sum(values, Decimal("0"))
    return {
        "mean": f"{total / len(values):.8f}",
        "max": f"{max(values):.8f}",
        "total": f"{total:.8f}",
    }


def _tokens(values: Sequence[int]) -> dict[str, float | int | None]:
    d = metrics.distribution(values)
    return {"mean": _f(d["mean"], 1), "p95": d["p95"], "max": d["max"]}


def _reliability(results: Sequence[DisputeResult]) -> dict[str, Any]:
    """Accuracy per confidence band over the disputes the machine decided (escalations are no
    decision, so they have no accuracy to calibrate)."""
    rows = reliability_table([r.confidence for r in results], [r.predicted == r.truth for r in results])
    return {
        "n": len(results),
        "calibrated": sum(r.calibration is not None for r in results),
        "expected_calibration_error": expected_calibration_error(rows),
        "bands": [row.model_dump() for row in rows],
    }


def _knn_baseline(results: Sequence[DisputeResult], k: int | None) -> dict[str, Any] | None:
    scored = [r for r in results if r.knn_predicted is not None]
    if not scored:
        return None
    truth, predicted = [r.truth for r in scored], [r.knn_predicted or "" for r in scored]
    return {
        "strategy": f"similarity-weighted vote of the {k} nearest past cases of any type (the same MiniLM vectors), "
        "balanced against the history's money-back rate; no rules, never escalates",
        "k": k,
        "n": len(scored),
        "accuracy": _f(metrics.accuracy(truth, predicted)),
        "balanced_accuracy": _f(metrics.balanced_accuracy(truth, predicted)),
        "recall": {key: _f(v) for key, v in metrics.recall_by_class(truth, predicted).items()},
        "balanced_accuracy_by_k": {
            str(other): _f(metrics.balanced_accuracy(truth, [r.knn_by_k[other] for r in scored]))
            for other in sorted({kk for r in scored for kk in r.knn_by_k})
            if all(other in r.knn_by_k for r in scored)
        },
    }


def _calibration_summary(calibration: ProposalCalibration | None) -> dict[str, Any] | None:
    if calibration is None:
        return None
    return {
        "calibration_id": calibration.calibration_id,
        "money_back_rate": calibration.money_back_rate,
        "history_cases": calibration.history_cases,
        "held_back": calibration.held_back,
        "maps": {
            key: {
                "n": m.n,
                "rate": m.rate,
                "steps": [
                    {"raw": f"{lo:.3f}-{hi:.3f}", "n": n, "calibrated": v}
                    for lo, hi, n, v in zip(m.lows, m.highs, m.counts, m.values, strict=True)
                ],
            }
            for key, m in calibration.maps.items()
        },  # fmt: skip
    }


def build_report(
    *,
    results: Sequence[DisputeResult],
    problems: Sequence[Problem],
    history_truth: Sequence[str],
    meta: dict[str, Any],
    calibration: ProposalCalibration | None = None,
    knn_k: int | None = None,
) -> dict[str, Any]:
    truth = [r.truth for r in results]
    predicted = [r.predicted for r in results]
    decided = [r for r in results if not r.escalated and not r.stopped_by_cap]
    escalated = sum(r.escalated for r in results)
    stopped = [r for r in results if r.stopped_by_cap]
    by_action: dict[str, dict[str, int]] = {t: {a: 0 for a in (*ACTION_COLUMNS, "stopped_by_cap")} for t in metrics.LABELS}
    for r in results:
        by_action[r.truth]["stopped_by_cap" if r.stopped_by_cap else r.action] += 1
    money_predicted = [r for r in results if r.predicted == metrics.MONEY_BACK]

    types: dict[str, list[DisputeResult]] = defaultdict(list)
    for r in results:
        types[r.dispute_type].append(r)
    by_type = {
        name: {
            "n": len(rs),
            "truth_money_back": sum(r.truth == metrics.MONEY_BACK for r in rs),
            "predicted_money_back": sum(r.predicted == metrics.MONEY_BACK for r in rs),
            "escalated": sum(r.escalated for r in rs),
            "accuracy": _f(metrics.accuracy([r.truth for r in rs], [r.predicted for r in rs])),
        }
        for name, rs in sorted(types.items())
    }
    bases: dict[str, list[DisputeResult]] = defaultdict(list)
    for r in results:
        bases[r.basis].append(r)
    by_basis = {
        name: {
            "n": len(rs),
            "escalated": sum(r.escalated for r in rs),
            "decided": sum(not r.escalated and not r.stopped_by_cap for r in rs),
            "accuracy": _f(metrics.accuracy([r.truth for r in rs], [r.predicted for r in rs])),
            "accuracy_on_decided": _f(metrics.accuracy(
                [r.truth for r in rs if not r.escalated and not r.stopped_by_cap],
                [r.predicted for r in rs if not r.escalated and not r.stopped_by_cap])),
        }
        for name, rs in sorted(bases.items())
    }  # fmt: skip
    problem_stages = Counter(p.stage for p in problems)
    return {
        "meta": meta,
        "counts": {
            "rows_read": meta.get("rows_read"),
            "history_cases": meta.get("history_cases"),
            "evaluated": len(results),
            "bad_rows_and_errors": len(problems),
            "errors_by_stage": dict(sorted(problem_stages.items())),
            "not_billing_skipped": meta.get("not_billing_skipped", 0),
            "truth": {label: truth.count(label) for label in metrics.LABELS},
            "predicted": {label: predicted.count(label) for label in metrics.LABELS},
            "actions": dict(sorted(Counter(r.action for r in results).items())),
            "amount_nominal": sum(r.amount_nominal for r in results),
        },
        "metrics": {
            "accuracy": _f(metrics.accuracy(truth, predicted)),
            "balanced_accuracy": _f(metrics.balanced_accuracy(truth, predicted)),
            "recall": {k: _f(v) for k, v in metrics.recall_by_class(truth, predicted).items()},
            "precision_money_back": _f(
                metrics.rate(sum(r.truth == metrics.MONEY_BACK for r in money_predicted), len(money_predicted))
            ),
            "escalation_rate": _f(metrics.rate(escalated, len(results))),
            "escalated": escalated,
            "decided": len(decided),
            "accuracy_on_decided": _f(metrics.accuracy([r.truth for r in decided], [r.predicted for r in decided])),
        },
        "confusion_matrix": {
            "rows": "truth",
            "columns": "predicted",
            "labels": list(metrics.LABELS),
            "matrix": metrics.confusion_matrix(truth, predicted),
            "by_action": by_action,
        },
        "baseline": {
            "strategy": "majority class of the history" if history_truth else "majority class of the evaluated set",
            **{k: (_f(v) if isinstance(v, float) else v) for k, v in metrics.majority_baseline(history_truth, truth).items()},
        },
        "knn_baseline": _knn_baseline(results, knn_k),
        "by_basis": by_basis,
        "reliability": {
            "decided": _reliability(decided),
            **{
                f"decided_{name}": _reliability([r for r in decided if r.basis == name])
                for name in sorted({r.basis for r in decided})
            },
        },
        "calibration": _calibration_summary(calibration),
        "tokens": {
            "input": _tokens([r.input_tokens for r in results]),
            "output": _tokens([r.output_tokens for r in results]),
        },
        "cost_usd": _money([r.cost_usd for r in results]),
        "would_be_cost_usd": {
            "model": meta.get("reference_model", "gpt-4o-mini"),
            "output_tokens": 250,
            **_money([r.would_be_cost_usd for r in results]),
            "with_prompt_caching": _money([r.would_be_cost_cached_usd for r in results]),
            "prompts_with_cached_prefix": sum(r.would_be_cached_input_tokens > 0 for r in results),
        },
        "caps": {
            "stopped": len(stopped),
            "by_cap": dict(sorted(Counter(name for r in stopped for name in r.failed_caps).items())),
        },
        "by_dispute_type": by_type,
        "errors": [p.model_dump() for p in problems[:MAX_LISTED_PROBLEMS]],
        "errors_not_listed": max(0, len(problems) - MAX_LISTED_PROBLEMS),
        "mapping": MAPPING_NOTES,
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _usd(value: str | None) -> str:
    return "n/a" if value is None else f"${Decimal(value):.6f}"


def _reliability_markdown(report: dict[str, Any]) -> list[str]:
    lines = ["", "### Reliability (decided disputes: accuracy per confidence band)", ""]
    tables = report["reliability"]
    lines.append(
        "| band | "
        + " | ".join(f"{name.removeprefix('decided_') if name != 'decided' else 'all'} n / conf / acc" for name in tables)
        + " |"
    )
    lines.append("|---" * (len(tables) + 1) + "|")
    bands = [row["band"] for row in tables["decided"]["bands"]]
    for i, band in enumerate(bands):
        cells = []
        for table in tables.values():
            row = table["bands"][i]
            cells.append(f"{row['n']} / {_num(row['mean_confidence'])} / {_pct(row['accuracy'])}" if row["n"] else "0")
        lines.append(f"| {band} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Expected calibration error (count-weighted |accuracy - confidence|): " + ", ".join(
        f"{name.removeprefix('decided_') if name != 'decided' else 'all'} {_num(t['expected_calibration_error'])} "
        f"({t['calibrated']} of {t['n']} calibrated)" for name, t in tables.items()) + ".")  # fmt: skip
    cal = report.get("calibration")
    if cal:
        lines += ["", f"Calibration `{cal['calibration_id']}` fitted on {cal['held_back']} held-back of {cal['history_cases']} past "
                  f"cases (money-back rate {_num(cal['money_back_rate'])}); maps: "
                  + ("; ".join(f"`{k}` {v['n']} outcomes, " + ", ".join(f"{s['raw']} -> {s['calibrated']:.2f} ({s['n']})" for s in v["steps"])
                               for k, v in cal["maps"].items()) or "none") + "."]  # fmt: skip
    return lines


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def render_markdown(report: dict[str, Any]) -> str:
    meta, counts, m = report["meta"], report["counts"], report["metrics"]
    base, cm = report["baseline"], report["confusion_matrix"]
    tok, wb = report["tokens"], report["would_be_cost_usd"]
    knn = report.get("knn_baseline") or {}
    lines = [
        "# Evaluation: CFPB complaints replayed as disputes",
        "",
        f"- complaints: `{meta['complaints_file']}` ({meta['rows_read']} rows read"
        + (f", first {meta['limit']} only" if meta.get("limit") else "")
        + ")",
        f"- history: {meta['history_cases']} past cases"
        + (
            f" ({meta['history_from_split']} from a {meta['split']:.0%} split of the complaints file by complaint id)"
            if meta.get("split")
            else ""
        )
        + (f", file `{meta['history_file']}`" if meta.get("history_file") else ""),
        f"- provider: `{meta['provider']}` (model `{meta['model']}`)"
        + (", billing disputes only" if meta.get("billing_only") else ""),
        f"- evaluated: **{counts['evaluated']}** disputes; bad rows and errors: {counts['bad_rows_and_errors']}"
        + (f"; not billing disputes, skipped: {counts['not_billing_skipped']}" if counts.get("not_billing_skipped") else ""),
        f"- truth: {counts['truth']['money_back']} money back, {counts['truth']['no_money']} no money; "
        f"amount from the narrative for {counts['evaluated'] - counts['amount_nominal']}, nominal for {counts['amount_nominal']}",
        "",
        "## Accuracy",
        "",
        "| | platform | majority baseline | kNN baseline |",
        "|---|---|---|---|",
        f"| accuracy | {_pct(m['accuracy'])} | {_pct(base['accuracy'])} | {_pct(knn.get('accuracy'))} |",
        f"| balanced accuracy | {_pct(m['balanced_accuracy'])} | {_pct(base['balanced_accuracy'])} | {_pct(knn.get('balanced_accuracy'))} |",
        f"| recall money back | {_pct(m['recall'].get('money_back'))} | {_pct(1.0 if base['class'] == 'money_back' else 0.0) if counts['truth']['money_back'] else 'n/a'} | {_pct(knn.get('recall', {}).get('money_back'))} |",
        f"| recall no money | {_pct(m['recall'].get('no_money'))} | {_pct(1.0 if base['class'] == 'no_money' else 0.0) if counts['truth']['no_money'] else 'n/a'} | {_pct(knn.get('recall', {}).get('no_money'))} |",
        f"| escalation rate | {_pct(m['escalation_rate'])} | 0.0% | 0.0% |",
        f"| accuracy on decided disputes | {_pct(m['accuracy_on_decided'])} ({m['decided']}) | {_pct(base['accuracy'])} | {_pct(knn.get('accuracy'))} |",
        "",
        (
            f"kNN baseline: {knn['strategy']}; k = {knn['k']}. Balanced accuracy by k: "
            + ", ".join(f"k={k} {_pct(v)}" for k, v in knn["balanced_accuracy_by_k"].items())
            + "."
            if knn
            else "No kNN baseline (no history)."
        ),
        "",
        f"Baseline: {base['strategy']} (`{base['class']}`). Escalation rate {_pct(m['escalation_rate'])} "
        f"({m['escalated']}); accuracy on the {m['decided']} disputes decided without a person: {_pct(m['accuracy_on_decided'])}; "
        f"precision of money back: {_pct(m['precision_money_back'])}.",
        "",
        "### Confusion matrix (rows: truth, columns: predicted)",
        "",
        "| truth \\ predicted | money_back | no_money |",
        "|---|---|---|",
    ]
    for label in cm["labels"]:
        lines.append(f"| {label} | {cm['matrix'][label]['money_back']} | {cm['matrix'][label]['no_money']} |")
    columns = list(next(iter(cm["by_action"].values())).keys())
    lines += ["", "### By proposed action", "", "| truth | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for label, row in cm["by_action"].items():
        lines.append(f"| {label} | " + " | ".join(str(row[c]) for c in columns) + " |")
    lines += [
        "",
        "### By basis (what determined the proposal)",
        "",
        "| basis | n | escalated | decided | accuracy | accuracy on decided |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in report["by_basis"].items():
        lines.append(
            f"| {name} | {row['n']} | {row['escalated']} | {row['decided']} | {_pct(row['accuracy'])} | {_pct(row['accuracy_on_decided'])} |"
        )
    lines += _reliability_markdown(report)
    lines += [
        "",
        "### By dispute type",
        "",
        "| type | n | truth money back | predicted money back | escalated | accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in report["by_dispute_type"].items():
        lines.append(
            f"| {name} | {row['n']} | {row['truth_money_back']} | {row['predicted_money_back']} | {row['escalated']} | {_pct(row['accuracy'])} |"
        )
    lines += [
        "",
        "## Tokens and cost",
        "",
        "| | mean | p95 | max |",
        "|---|---|---|---|",
        f"| input tokens | {tok['input']['mean']} | {tok['input']['p95']} | {tok['input']['max']} |",
        f"| output tokens | {tok['output']['mean']} | {tok['output']['p95']} | {tok['output']['max']} |",
        "",
        "| cost per dispute | mean | max | total |",
        "|---|---|---|---|",
        f"| actual ({meta['provider']}) | {_usd(report['cost_usd']['mean'])} | {_usd(report['cost_usd']['max'])} | {_usd(report['cost_usd']['total'])} |",
        f"| would-be {wb['model']}, {wb['output_tokens']} output tokens | {_usd(wb['mean'])} | {_usd(wb['max'])} | {_usd(wb['total'])} |",
        f"| same, with prompt caching | {_usd(wb['with_prompt_caching']['mean'])} | {_usd(wb['with_prompt_caching']['max'])} | {_usd(wb['with_prompt_caching']['total'])} |",
        "",
        f"Prompts with a cacheable shared prefix (>= 1,024 tokens): {wb['prompts_with_cached_prefix']}.",
        "",
        "## Caps",
        "",
        f"Disputes stopped by a cap: {report['caps']['stopped']}"
        + (" (" + ", ".join(f"{k}: {v}" for k, v in report["caps"]["by_cap"].items()) + ")" if report["caps"]["by_cap"] else "")
        + ".",
        "",
        "## Bad rows and errors",
        "",
    ]
    if report["errors"]:
        lines += ["| stage | row | line | complaint | reason |", "|---|---|---|---|---|"]
        for p in report["errors"]:
            reason = str(p["reason"]).replace("|", "\\|")
            lines.append(f"| {p['stage']} | {p['row'] or ''} | {p['line'] or ''} | {p['complaint_id'] or ''} | {reason} |")
        if report["errors_not_listed"]:
            lines.append(f"\n... and {report['errors_not_listed']} more (see report.json).")
    else:
        lines.append("None.")
    lines += ["", "## How complaints were mapped", ""] + [f"- {note}" for note in report["mapping"]]
    lines += ["", f"Run took {meta.get('seconds')} s.", ""]
    return "\n".join(lines)
