"""How much reviewer work the policy auto-approval lane would save, on evaluation results or on a
platform database, under the lane's rules (domain/auto_lane.py) at given settings.

    python scripts/auto_lane_savings.py --results OUT/results.jsonl [--max-usd 100] [--min-confidence 0.9]
    python scripts/auto_lane_savings.py --database            # the platform's database (after `dispute-platform run`)

The lane takes only proposals whose confidence is calibrated; a deployment gets policy maps once
reviewers have decided enough policy proposals (MIN_PAIRS per side). `--assume-calibrated` counts
what would qualify once they exist, at today's figures (said so in the output).
"""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from pathlib import Path

from dispute_platform.domain.auto_lane import AutoLaneRule, auto_verdict
from dispute_platform.domain.caps import CapResult
from dispute_platform.domain.models import Action, ResolutionProposal
from dispute_platform.domain.money import DEFAULT_USD_RATES

MONEY_BACK = {"full_refund", "partial_refund", "credit"}


def _proposal(row: dict, assume_calibrated: bool) -> ResolutionProposal:
    return ResolutionProposal(
        action=Action(row["action"]), amount=Decimal(str(row["amount"])), currency=row.get("currency") or "USD",
        confidence=float(row["confidence"]), basis=row.get("basis") or "none",
        calibration=row.get("calibration") or ("assumed" if assume_calibrated else None), reasoning="",
        model="", provider="", prompt_version="", input_tokens=0, output_tokens=0, cost_usd=Decimal("0"),
        flags=list(row.get("flags") or []),
    )  # fmt: skip


def _caps(row: dict) -> list[CapResult]:
    failed = set(row.get("failed_caps") or [])
    names = ("input_tokens_within_cap", "output_tokens_within_cap", "cost_within_cap", "amount_within_refundable")
    return [CapResult(name=n, passed=n not in failed, figure=Decimal(0), cap=Decimal(0), description="") for n in names]


def summarise(rows: list[dict], rule: AutoLaneRule, assume_calibrated: bool) -> dict:
    taken, right, reasons = 0, 0, {}
    for row in rows:
        verdict = auto_verdict(_proposal(row, assume_calibrated), _caps(row), rule, DEFAULT_USD_RATES)
        if verdict.eligible:
            taken += 1
            if "truth" in row:
                right += (row["action"] in MONEY_BACK) == (row["truth"] == "money_back")
        else:
            head = verdict.reason.split(":")[0].split(" (")[0]
            if head.startswith("calibrated confidence"):
                head = f"confidence below {rule.min_confidence}"
            elif "USD is above" in head:
                head = f"above {rule.max_usd} USD"
            reasons[head] = reasons.get(head, 0) + 1
    out = {"proposals": len(rows), "auto_approved": taken, "share": round(taken / len(rows), 3) if rows else None,
           "not_taken_because": dict(sorted(reasons.items(), key=lambda kv: -kv[1]))}  # fmt: skip
    if rows and "truth" in rows[0]:
        out["right_among_auto_approved"] = round(right / taken, 3) if taken else None
    return out


def from_results(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        rows.append({**r, "amount": r.get("proposed_amount") or "0"})
    return rows


def from_database() -> list[dict]:
    from dispute_platform.local import LocalServices

    with LocalServices() as services:
        db = services.database()
        found = db.fetch_all(
            """SELECT DISTINCT ON (p.case_id) p.proposal, p.flags, ARRAY(SELECT check_name FROM check_results c
                      WHERE c.case_id = p.case_id AND c.proposal_version = p.version AND NOT c.passed) AS failed
               FROM proposals p ORDER BY p.case_id, p.version DESC"""
        )
        db.close()
    return [{**r["proposal"], "flags": r["flags"], "failed_caps": r["failed"]} for r in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, help="an evaluation's results.jsonl")
    parser.add_argument("--database", action="store_true", help="the platform's database (DATABASE_URL or the embedded one)")
    parser.add_argument("--max-usd", type=Decimal, default=Decimal("100"))
    parser.add_argument("--min-confidence", type=float, default=0.9)
    parser.add_argument("--assume-calibrated", action="store_true")
    args = parser.parse_args()
    rows = from_results(args.results) if args.results else from_database()
    rule = AutoLaneRule(max_usd=args.max_usd, min_confidence=args.min_confidence)
    print(json.dumps({"max_usd": str(args.max_usd), "min_confidence": args.min_confidence,
                      "assume_calibrated": args.assume_calibrated,
                      **summarise(rows, rule, args.assume_calibrated)}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
