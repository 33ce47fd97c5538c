"""Building and checking the world; the sample-event table, statistics and docs blocks; the command line."""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from dispute_platform.domain.context import enrich
from dispute_platform.domain.models import DisputeEvent
from dispute_platform.domain.world import SandboxWorld
from dispute_platform.sandbox import __doc__ as PACKAGE_DOC
from dispute_platform.sandbox.accounts import (
    add_random_incidents,
    add_random_refunds_and_disputes,
    bill_unclaimed_accounts,
    make_accounts,
)
from dispute_platform.sandbox.assemble import assemble, number_entities, render_world
from dispute_platform.sandbox.common import (
    CASES_FROM,
    DOC_BLOCK_END,
    DOC_BLOCK_START,
    DOCS_PATH,
    HISTORY_PATH,
    SEED,
    WORLD_PATH,
    WORLD_TODAY,
    D,
    money,
)
from dispute_platform.sandbox.decision import decide, decide_world_case, event_for_case, records_for
from dispute_platform.sandbox.draft import CaseDraft, WorldDraft
from dispute_platform.sandbox.history import HistoryItem, build_history, render_history
from dispute_platform.sandbox.scenarios import SCENARIOS
from dispute_platform.settings import REPO_ROOT


@dataclass
class Built:
    world: SandboxWorld
    drafts: list[CaseDraft]
    history: list[HistoryItem]


def build() -> Built:
    master = random.Random(SEED)
    # One child stream per part, drawn in a fixed order: a change to the history does not reshuffle
    # the world, and the reverse.
    world_rng, history_rng = random.Random(master.getrandbits(64)), random.Random(master.getrandbits(64))
    w = WorldDraft(world_rng)
    make_accounts(w)
    for run in SCENARIOS:
        run(w)
    bill_unclaimed_accounts(w)
    add_random_refunds_and_disputes(w)
    add_random_incidents(w)
    number_entities(w)
    world = assemble(w)
    check_world(world, w.cases)
    return Built(world=world, drafts=w.cases, history=build_history(world, history_rng))


def check_world(world: SandboxWorld, drafts: list[CaseDraft]) -> None:
    """Fail the build when a scenario does not get the decision it was built for."""
    problems = []
    for draft in drafts:
        if not CASES_FROM <= draft.opened_at.date() < WORLD_TODAY:
            problems.append(f"{draft.case_id} ({draft.scenario}): opened {draft.opened_at}, outside the open-case window")
        checks = [(draft.expect, None)]
        if draft.sample:
            event = DisputeEvent.model_validate(next(e for e in world.sample_events if e["case_id"] == draft.case_id))
            checks.append((draft.event_expect or draft.expect, event))
        for expect, event in checks:
            decision = decide_world_case(world, draft.case_id, event)
            if expect.invalid:
                ok = not decision.valid and set(decision.issues) == set(expect.invalid)
            else:
                ok = decision.valid and decision.action == expect.action and decision.amount == D(expect.amount)
            if not ok:
                problems.append(
                    f"{draft.case_id} ({draft.scenario}{', sample event' if event else ''}): expected {expect}, got "
                    f"{decision.action} {decision.amount} issues={decision.issues} reason={decision.outcome.reason!r}"
                )
    if problems:
        raise SystemExit("scenarios do not decide as built:\n  " + "\n  ".join(problems))


def decision_rows(built: Built, events: list[DisputeEvent]) -> list[dict]:
    """One row per event: what the rules (then the guardrails) decide, or why it is invalid."""
    drafts = {d.case_id: d for d in built.drafts}
    rows = []
    for event in events:
        crm, billing, payments = records_for(built.world, event.case_id)
        context = enrich(event, crm, billing, payments)
        decision = decide(context)
        case, account = crm.case, crm.account
        plan = billing.subscription.plan.plan_id if billing.subscription else "no subscription"
        if decision.valid:
            decided = f"{decision.action} {money(decision.amount)}" if decision.amount else decision.action
            why = decision.outcome.reason
            if decision.flags:
                why += f" [guardrails: {', '.join(decision.flags)}]"
        else:
            decided = "invalid: " + ", ".join(decision.issues)
            why = context.verdict.summary
        rows.append(
            {
                "case": event.case_id,
                "type": case.dispute_type,
                "who": f"{account.segment.value}, {plan}",
                "amount": money(case.amount),
                "decision": decided,
                "scenario": drafts[event.case_id].scenario,
                "why": why,
            }
        )
    return rows


def sample_events(built: Built) -> list[DisputeEvent]:
    return [DisputeEvent.model_validate(body) for body in built.world.sample_events]


def other_case_events(built: Built) -> list[DisputeEvent]:
    """The cases no sample event names, as a well-behaved producer would send them."""
    sampled = {body["case_id"] for body in built.world.sample_events}
    return [event_for_case(c) for c in built.world.cases if c.case_id not in sampled]


def markdown_table(built: Built, events: list[DisputeEvent] | None = None) -> str:
    lines = [
        "| Case | Type | Segment, plan | Disputed | Rules + guardrails decide | Scenario | Why (from the rules) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in decision_rows(built, sample_events(built) if events is None else events):
        cells = [r["case"], f"`{r['type']}`", r["who"], r["amount"], f"**{r['decision']}**", r["scenario"], r["why"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render_docs(built: Built, current: str) -> str:
    """docs/sandbox.md with each generated block replaced between its markers; a block whose
    markers are missing is left out, the rest of the page is the author's."""
    blocks = {
        "world-stats": lambda: "```text\n" + statistics(built) + "\n```\n",
        "sample-events": lambda: markdown_table(built),
        "other-cases": lambda: markdown_table(built, other_case_events(built)),
    }
    for name, render in blocks.items():
        start, end = DOC_BLOCK_START.format(name=name), DOC_BLOCK_END.format(name=name)
        if start not in current or end not in current:
            continue
        head, rest = current.split(start, 1)
        _, tail = rest.split(end, 1)
        current = f"{head}{start}\n{render()}{end}{tail}"
    return current


def statistics(built: Built) -> str:
    world = built.world
    out = [f"world: {WORLD_PATH.relative_to(REPO_ROOT)} ({len(render_world(world).encode()) / 1e6:.2f} MB)"]
    for key in (
        "plans",
        "accounts",
        "subscriptions",
        "invoices",
        "charges",
        "refunds",
        "disputes",
        "incidents",
        "cases",
        "sample_events",
    ):
        out.append(f"  {key:14} {len(getattr(world, key))}")
    out.append(
        "  accounts by segment: "
        + ", ".join(f"{k}={v}" for k, v in sorted(Counter(a.segment.value for a in world.accounts).items()))
    )
    out.append(
        "  accounts by status/standing: "
        + ", ".join(f"{k}={v}" for k, v in sorted(Counter(f"{a.status}/{a.standing}" for a in world.accounts).items()))
    )
    out.append(
        "  charges by kind/status: "
        + ", ".join(f"{k}={v}" for k, v in sorted(Counter(f"{c.kind}/{c.status}" for c in world.charges).items()))
    )
    out.append(
        "  cases by type: " + ", ".join(f"{k}={v}" for k, v in sorted(Counter(c.dispute_type for c in world.cases).items()))
    )
    out.append(
        "  sample events by type: "
        + ", ".join(f"{k}={v}" for k, v in sorted(Counter(e["dispute_type"] for e in world.sample_events).items()))
    )
    invalid = [d for d in built.drafts if d.expect.invalid or (d.sample and d.event_expect and d.event_expect.invalid)]
    out.append(f"  invalid cases/events: {len(invalid)}")
    rows = [i.row for i in built.history]
    out.append(f"history: {HISTORY_PATH.relative_to(REPO_ROOT)} ({len(rows)} rows)")
    out.append("  by type: " + ", ".join(f"{k}={v}" for k, v in sorted(Counter(r["dispute_type"] for r in rows).items())))
    out.append("  by action: " + ", ".join(f"{k}={v}" for k, v in sorted(Counter(r["action"] for r in rows).items())))
    out.append("  by segment: " + ", ".join(f"{k}={v}" for k, v in sorted(Counter(r["segment"] for r in rows).items())))
    return "\n".join(out)


def outputs(built: Built) -> dict[Path, str]:
    docs = DOCS_PATH.read_text(encoding="utf-8") if DOCS_PATH.exists() else None
    result = {WORLD_PATH: render_world(built.world), HISTORY_PATH: render_history(built.history)}
    if docs is not None:
        result[DOCS_PATH] = render_docs(built, docs)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=PACKAGE_DOC.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 if a committed output is out of date")
    group.add_argument("--table", action="store_true", help="print the sample-event table (markdown)")
    group.add_argument("--stats", action="store_true", help="print statistics")
    args = parser.parse_args(argv)
    built = build()
    if args.table:
        sys.stdout.write(markdown_table(built))
        return 0
    if args.stats:
        print(statistics(built))
        return 0
    stale = [path for path, text in outputs(built).items() if not path.exists() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(
                f"out of date: {path.relative_to(REPO_ROOT)} (run python scripts/build_sandbox_world.py)",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path, text in outputs(built).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(statistics(built))
    return 0
