"""The bundled sandbox world and the seed precedent file: they load, they are consistent, they
exercise every dispute type, rule branch and validation code, and they are up to date with
scripts/build_sandbox_world.py."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from dispute_platform.domain.context import enrich
from dispute_platform.domain.facts import derive_facts
from dispute_platform.domain.guardrails import apply_guardrails
from dispute_platform.domain.masking import mask_pii
from dispute_platform.domain.models import (
    BillingRecord,
    CrmRecord,
    DisputeEvent,
    DisputeType,
    EnrichedContext,
    PaymentRecord,
    ResolutionProposal,
)
from dispute_platform.domain.precedent import apply_policy_rules
from dispute_platform.domain.world import BUNDLED_WORLD, SandboxWorld

REPO_ROOT = Path(__file__).resolve().parents[2]
HISTORY = REPO_ROOT / "dispute_platform" / "data" / "historical_resolutions.jsonl"

# One sample event per validation code the platform must demonstrate on a fresh machine.
REQUIRED_SAMPLE_CODES = {
    "unknown_dispute_type",
    "account_inactive",
    "outside_window",
    "amount_exceeds_billed",
    "already_refunded",
    "amount_exceeds_refundable",
    "charge_not_found",
    "customer_mismatch",
}
# Every issue code validation.py can raise. Currency and customer mismatches only come from an
# event that disagrees with the CRM, so they are looked for among the sample events too.
ALL_CODES = REQUIRED_SAMPLE_CODES | {
    "currency_mismatch",
    "amount_not_positive",
    "charge_not_settled",
    "charge_after_case",
}


@pytest.fixture(scope="module")
def world() -> SandboxWorld:
    return SandboxWorld.load()


@pytest.fixture(scope="module")
def history_rows() -> list[dict]:
    return [json.loads(line) for line in HISTORY.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def generator():
    """The sandbox generator (dispute_platform/sandbox/; scripts/build_sandbox_world.py runs it)."""
    return importlib.import_module("dispute_platform.sandbox.build")


# -- helpers: what the sandbox providers return, and what the offline engine decides ------------


def records(world: SandboxWorld, case_id: str) -> tuple[CrmRecord, BillingRecord, PaymentRecord]:
    case = world.cases_by_id[case_id]
    account = world.accounts_by_id[case.customer_id]
    charges = world.charges_by_customer.get(case.customer_id, [])
    ids = {c.charge_id for c in charges}
    return (
        CrmRecord(case=case, account=account, incidents=world.incidents_for(account)),
        BillingRecord(
            subscription=world.subscription_for(case.customer_id),
            invoices=world.invoices_by_customer.get(case.customer_id, []),
        ),
        PaymentRecord(charges=charges, refunds=world.refunds_for(ids), disputes=world.disputes_for(ids)),
    )


def event_from_case(world: SandboxWorld, case_id: str) -> DisputeEvent:
    case = world.cases_by_id[case_id]
    return DisputeEvent(
        case_id=case.case_id,
        customer_id=case.customer_id,
        dispute_type=case.dispute_type,
        amount=case.amount,
        currency=case.currency,
        description=case.description,
        occurred_at=case.opened_at,
    )


def context_for(world: SandboxWorld, case_id: str, event: DisputeEvent | None = None) -> EnrichedContext:
    return enrich(event or event_from_case(world, case_id), *records(world, case_id))


def decided(context: EnrichedContext) -> tuple[str, Decimal]:
    """Rules, then guardrails (invalid -> deny, unauthorized and above $1,000.00 -> escalate)."""
    outcome = apply_policy_rules(derive_facts(context))
    proposal = ResolutionProposal(
        action=outcome.action,
        amount=outcome.amount,
        confidence=outcome.confidence,
        reasoning=outcome.reason,
        cited_policies=outcome.citations,
        model="precedent-rules",
        provider="rules",
        prompt_version="test",
    )
    final = apply_guardrails(proposal, context)
    return final.action.value, final.amount


# -- the world ---------------------------------------------------------------------------------


def test_bundled_world_loads(world):
    assert BUNDLED_WORLD.exists()
    assert world.description
    assert {p.plan_id for p in world.plans} == {
        f"{tier}-{period}" for tier in ("starter", "team", "business", "enterprise") for period in ("monthly", "annual")
    }
    assert 280 <= len(world.accounts) <= 320
    assert 60 <= len(world.cases) <= 80
    assert 35 <= len(world.sample_events) <= 45
    assert BUNDLED_WORLD.stat().st_size < 3_000_000


def test_segments_and_standing_are_realistic(world):
    segments = Counter(a.segment.value for a in world.accounts)
    total = len(world.accounts)
    assert 0.55 <= segments["smb"] / total <= 0.65
    assert 0.23 <= segments["mid_market"] / total <= 0.33
    assert 0.08 <= segments["enterprise"] / total <= 0.16
    active_good = sum(1 for a in world.accounts if a.status == "active" and a.standing == "good")
    assert active_good / total > 0.8
    assert {a.status for a in world.accounts} == {"active", "suspended", "closed"}
    assert {a.standing for a in world.accounts} == {"good", "past_due", "collections"}
    assert all(a.email and a.phone for a in world.accounts)


def test_ids_are_unique(world):
    def unique(values):
        values = list(values)
        return len(values) == len(set(values))

    assert unique(p.plan_id for p in world.plans)
    assert unique(a.customer_id for a in world.accounts)
    assert unique(s.subscription_id for s in world.subscriptions)
    assert unique(s.customer_id for s in world.subscriptions), "one subscription per account"
    assert unique(i.invoice_id for i in world.invoices)
    assert unique(c.charge_id for c in world.charges)
    assert unique(r.refund_id for r in world.refunds)
    assert unique(d.dispute_id for d in world.disputes)
    assert unique(i.incident_id for i in world.incidents)
    assert unique(c.case_id for c in world.cases)
    assert unique(e["event_id"] for e in world.sample_events)
    assert unique(e["case_id"] for e in world.sample_events)


def test_references_resolve(world):
    customers = set(world.accounts_by_id)
    invoices = {i.invoice_id: i for i in world.invoices}
    assert all(s.customer_id in customers and s.plan_id in world.plans_by_id for s in world.subscriptions)
    for charge in world.charges:
        assert charge.customer_id in customers
        assert charge.invoice_id in invoices and invoices[charge.invoice_id].customer_id == charge.customer_id
        assert charge.card_last4 and len(charge.card_last4) == 4
        if charge.kind in ("subscription", "renewal"):
            assert charge.period_start and charge.period_end and charge.period_start <= charge.period_end
    assert all(r.charge_id in world.charges_by_id for r in world.refunds)
    assert all(d.charge_id in world.charges_by_id for d in world.disputes)
    for incident in world.incidents:
        assert incident.ended_at > incident.started_at
        assert set(incident.affected_customer_ids) <= customers
        assert incident.affected_segments or incident.affected_customer_ids
    for case in world.cases:
        assert case.customer_id in customers


def test_invoices_add_up(world):
    for invoice in world.invoices:
        assert invoice.lines and invoice.amount == sum(line.amount for line in invoice.lines)
    kinds = {line.kind for invoice in world.invoices for line in invoice.lines}
    assert {"subscription", "late_fee", "one_time", "usage"} <= kinds


def test_amount_refunded_equals_the_refunds(world):
    refunded: dict[str, Decimal] = {}
    for refund in world.refunds:
        refunded[refund.charge_id] = refunded.get(refund.charge_id, Decimal("0")) + refund.amount
    for charge in world.charges:
        assert charge.amount_refunded == refunded.get(charge.charge_id, Decimal("0")), charge.charge_id
        assert charge.amount_refunded <= charge.amount


def test_charge_kinds_and_statuses(world):
    kinds = Counter(c.kind for c in world.charges)
    assert set(kinds) == {"subscription", "renewal", "late_fee", "one_time", "usage"}
    assert any(c.status == "failed" for c in world.charges)
    assert {c.fulfillment_status for c in world.charges if c.kind == "one_time"} >= {"delivered", "not_delivered"}
    assert any(i.scheduled_maintenance for i in world.incidents)
    assert any(i.affected_segments for i in world.incidents) and any(i.affected_customer_ids for i in world.incidents)


def test_no_date_after_world_today(world):
    today = date(2026, 11, 20)
    assert all(c.created_at.date() <= today for c in world.charges)
    assert all(r.created_at.date() <= today for r in world.refunds)
    assert all(d.created_at.date() <= today for d in world.disputes)
    assert all(i.ended_at.date() <= today for i in world.incidents)
    assert all(s.started_at <= s.current_period_start <= today <= s.current_period_end or s.status == "cancelled"
               for s in world.subscriptions)  # fmt: skip
    assert all(a.created_at <= today for a in world.accounts)
    assert all(i.issued_at <= today for i in world.invoices)
    assert all(date(2026, 10, 1) <= c.opened_at.date() < today for c in world.cases)


def test_case_texts_exercise_masking_and_injection(world):
    masked = [c for c in world.cases if mask_pii(c.description) != c.description]
    assert len(masked) >= 8
    texts = " ".join(mask_pii(c.description) for c in world.cases)
    assert "[EMAIL]" in texts and "[PHONE]" in texts and "[CARD ****" in texts
    injections = [c for c in world.cases if "ignore previous instructions" in c.description.lower()
                  or "disregard all prior rules" in c.description.lower()]  # fmt: skip
    assert 2 <= len(injections) <= 4


# -- sample events -----------------------------------------------------------------------------


def test_sample_events_parse_and_name_existing_cases(world):
    for body in world.sample_events:
        assert isinstance(body["amount"], (int, float)) and not isinstance(body["amount"], bool)
        event = DisputeEvent.model_validate(body)
        assert event.case_id in world.cases_by_id
        assert event.event_id == f"evt-{event.case_id}"


def test_sample_events_cover_all_types_and_invalid_codes(world):
    types, codes = set(), set()
    for body in world.sample_events:
        event = DisputeEvent.model_validate(body)
        context = context_for(world, event.case_id, event)
        types.add(context.crm.case.dispute_type)
        codes |= {issue.code for issue in context.verdict.issues}
    assert {t.value for t in DisputeType} <= types
    assert REQUIRED_SAMPLE_CODES <= codes


def test_every_validation_code_appears_somewhere(world):
    codes = set()
    for case in world.cases:
        codes |= {i.code for i in context_for(world, case.case_id).verdict.issues}
    for body in world.sample_events:
        event = DisputeEvent.model_validate(body)
        codes |= {i.code for i in context_for(world, event.case_id, event).verdict.issues}
    assert ALL_CODES <= codes


def test_an_old_unauthorized_case_stays_valid(world):
    old = [
        ctx for case in world.cases if case.dispute_type == "unauthorized"
        for ctx in [context_for(world, case.case_id)] if ctx.verdict.days_since_charge > 120
    ]  # fmt: skip
    assert old and all(ctx.verdict.valid for ctx in old)


@pytest.mark.parametrize("case_id", [c.case_id for c in SandboxWorld.load().cases])
def test_every_case_enriches_and_the_rules_run(world, case_id):
    context = context_for(world, case_id)
    facts = derive_facts(context)
    outcome = apply_policy_rules(facts)
    action, amount = decided(context)
    assert outcome.citations and outcome.reason
    assert amount <= context.crm.case.amount
    if not context.verdict.valid:
        assert (action, amount) == ("deny", Decimal("0"))


def test_cases_reach_every_rule_branch_and_boundary(world):
    """Facts and decisions over the valid cases: each policy branch and boundary is present."""
    seen = set()
    for case in world.cases:
        context = context_for(world, case.case_id)
        if not context.verdict.valid:
            continue
        f = derive_facts(context)
        action, amount = decided(context)
        t = f.dispute_type
        if t == "duplicate_charge":
            seen.add(("dup", bool(f.duplicate_of)))
        elif t == "service_outage":
            seen.add(("outage", None if f.monthly_fee is None else f.outage_hours))
        elif t == "cancellation_refund":
            seen.add(("cancel", f.billing_period, f.days_to_cancel_request))
        elif t == "wrong_amount":
            seen.add(("wrong", None if f.overcharge is None else f.overcharge > 0))
        elif t == "late_fee":
            seen.add(("late", f.charge_kind == "late_fee", f.late_fees_prior_12m, f.standing))
        elif t == "product_not_received":
            group = {"delivered": "delivered", "not_applicable": "no record"}.get(f.fulfillment_status, "not delivered")
            seen.add(("pnr", group, (f.days_since_charge or 0) >= 14 if group == "not delivered" else None))
        elif t == "general":
            seen.add(("general", f.segment))
        seen.add(("decision", action, amount))
        seen.add(("type", t))

    expected = {
        ("dup", True), ("dup", False),
        ("outage", None), ("outage", Decimal("0.50")), ("outage", Decimal("1.00")), ("outage", Decimal("4.00")),
        ("outage", Decimal("24.00")), ("outage", Decimal("30.00")), ("outage", Decimal("0")),
        ("cancel", "annual", 14), ("cancel", "annual", 15), ("cancel", "annual", 30), ("cancel", "annual", 31),
        ("cancel", "monthly", 14), ("cancel", "monthly", 15), ("cancel", "monthly", None),
        ("wrong", None), ("wrong", True), ("wrong", False),
        ("late", True, 0, "good"), ("late", True, 1, "good"), ("late", True, 0, "past_due"), ("late", False, None, "good"),
        ("pnr", "delivered", None), ("pnr", "no record", None),
        ("pnr", "not delivered", True), ("pnr", "not delivered", False),
        ("general", "enterprise"), ("general", "smb"),
        # Guardrails: an enterprise annual duplicate above the threshold, and one at exactly $1,000.00.
        ("decision", "escalate", Decimal("15000.00")), ("decision", "full_refund", Decimal("1000.00")),
    }  # fmt: skip
    assert expected <= seen, expected - seen
    assert {("type", t.value) for t in DisputeType} <= seen


# -- historical resolutions --------------------------------------------------------------------


def test_history_shape(history_rows):
    assert 280 <= len(history_rows) <= 320
    ids = [r["case_id"] for r in history_rows]
    assert len(ids) == len(set(ids)) and all(i.startswith("HIST-") for i in ids)
    assert {r["dispute_type"] for r in history_rows} == {t.value for t in DisputeType}
    keys = {"case_id", "customer_id", "segment", "dispute_type", "amount", "currency", "description", "action",
            "resolved_amount", "citations", "summary", "outcome", "resolved_at", "source"}  # fmt: skip
    for row in history_rows:
        assert set(row) == keys
        assert Decimal(row["amount"]) == Decimal(row["amount"]).quantize(Decimal("0.01")) and "." in row["amount"]
        assert isinstance(row["resolved_amount"], str) and "." in row["resolved_amount"]
        assert row["action"] in {"full_refund", "partial_refund", "credit", "deny", "escalate"}
        assert row["outcome"] == ("escalated" if row["action"] == "escalate" else "resolved")
        assert row["citations"] and all(c.startswith("POL-") and " §" in c for c in row["citations"])
        assert row["source"] == "seed" and row["currency"] == "USD"
        assert "2025-01-01" <= row["resolved_at"] <= "2026-12-31"
        assert mask_pii(row["description"]) == row["description"], "no PII in the seed file"
        assert row["summary"].endswith(".") and len(row["summary"]) > 40
        if row["action"] in ("full_refund", "partial_refund", "credit"):
            assert f"${Decimal(row['resolved_amount']):,.2f}" in row["summary"], "the summary states the figure"
    counts = Counter(r["dispute_type"] for r in history_rows)
    assert counts["duplicate_charge"] > counts["late_fee"] and counts["service_outage"] > counts["late_fee"]
    duplicates = [r["description"] for r in history_rows if r["dispute_type"] == "duplicate_charge"]
    assert len(duplicates) >= 20 and len(set(duplicates)) >= 15


def test_history_rows_are_what_the_rules_decide(generator, history_rows):
    """Rebuild each row's synthetic context and decide it again, independently of the script."""
    built = generator.build()
    by_id = {r["case_id"]: r for r in history_rows}
    assert len(built.history) == len(history_rows)
    for item in built.history:
        row = by_id[item.context.case_id]
        action, amount = decided(item.context)
        assert row["action"] == action, row["case_id"]
        assert Decimal(row["resolved_amount"]) == amount, row["case_id"]
        assert Decimal(row["amount"]) == item.context.crm.case.amount
        assert row["dispute_type"] == item.context.crm.case.dispute_type
        assert row["customer_id"] == item.context.crm.account.customer_id


def test_generated_files_are_up_to_date():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "build_sandbox_world.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
