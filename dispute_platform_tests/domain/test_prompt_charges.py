"""The payment history in the prompt: evidence first, whole lines only, and a `trimmed:charges`
flag only when a charge that bears on the dispute was left out (issue 14)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from dispute_platform.domain.facts import derive_facts
from dispute_platform.domain.prompt import PromptBudget, build_prompt
from dispute_platform.domain.tokens import ELLIPSIS, count_tokens
from dispute_platform_tests.domain import factories as f

D = Decimal


def _renewals(months: int, amount: str = "1500.00") -> list:
    """A year of monthly renewals of the same amount: same kind and amount as the disputed one,
    but other invoices and periods, so none of them is evidence."""
    out = []
    for i in range(1, months + 1):
        start = date(2025, 6, 1) - timedelta(days=30 * i)
        out.append(
            f.charge(
                f"ch_r{i:02d}_kP3xQ9zL",
                amount=D(amount),
                created_at=f.CHARGE_AT - timedelta(days=30 * i),
                invoice_id=f"INV-{1000 + i}",
                period_start=start,
                period_end=start + timedelta(days=29),
            )
        )
    return out


def _charge_lines(prompt) -> list[str]:
    return [line for line in prompt.messages[1]["content"].splitlines() if line.startswith("- ch_")]


def _duplicate_world():
    disputed = f.charge(
        "ch_dup2_Zq81kLmN", amount=D("1500.00"), invoice_id="INV-0999", created_at=f.CHARGE_AT + timedelta(minutes=4)
    )
    original = f.charge("ch_dup1_Pw02hYtR", amount=D("1500.00"), invoice_id="INV-0999", created_at=f.CHARGE_AT)
    return disputed, original, [*_renewals(12), original, disputed]


def test_a_year_of_renewals_never_hides_the_duplicate():
    disputed, original, charges = _duplicate_world()
    context = f.context(charges=charges, charge_id=disputed.charge_id, amount=D("1500.00"))
    facts = derive_facts(context)
    assert facts.duplicate_of == original.charge_id
    prompt = build_prompt(context, facts, [f.policy_hit()], [])
    lines = _charge_lines(prompt)
    assert lines[0].startswith(f"- {disputed.charge_id} ") and lines[1].startswith(f"- {original.charge_id} ")
    # Whole lines: the invoice id, the status and every amount are there, nothing ends cut.
    for line in lines:
        assert ELLIPSIS.strip() not in line and "[...]" not in line
        assert " 1500.00 " in line and " succeeded " in line and "inv=" in line
    # The renewals left out are not evidence, so nothing relevant was trimmed.
    assert "charges" not in prompt.trimmed
    left_out = len(charges) - len(lines)
    assert f"most relevant {len(lines)} of {len(charges)}, {left_out} left out" in prompt.messages[1]["content"]


def test_a_relevant_charge_left_out_is_flagged():
    disputed, original, charges = _duplicate_world()
    context = f.context(charges=charges, charge_id=disputed.charge_id, amount=D("1500.00"))
    one_line = count_tokens(_charge_lines(build_prompt(context, derive_facts(context), [], []))[0])
    prompt = build_prompt(context, derive_facts(context), [], [], PromptBudget(charges_tokens=one_line))
    assert len(_charge_lines(prompt)) == 1  # the disputed charge only: its duplicate did not fit
    assert "charges" in prompt.trimmed


def test_no_charge_line_is_ever_cut_inside_a_number():
    disputed, _, charges = _duplicate_world()
    context = f.context(charges=charges, charge_id=disputed.charge_id, amount=D("1500.00"))
    for budget in range(0, 130, 7):
        prompt = build_prompt(context, derive_facts(context), [], [], PromptBudget(charges_tokens=budget))
        assert prompt.section_tokens["charges"] <= budget
        for line in _charge_lines(prompt):
            assert re.search(r" 1500\.00 ", line), line


def test_status_and_delivery_are_shown():
    failed = f.charge("ch_f", status="failed", created_at=f.CHARGE_AT - timedelta(days=1))
    shipped = f.charge("ch_s", kind="one_time", fulfillment_status="shipped", invoice_id=None, period_start=None, period_end=None)
    context = f.context(dispute_type="product_not_received", charges=[failed, shipped], charge_id="ch_s")
    text = "\n".join(_charge_lines(build_prompt(context, derive_facts(context), [], [])))
    assert "ch_s" in text and "delivery=shipped" in text and " failed" in text


_CHARGE = st.builds(
    lambda i, amount, kind, same_invoice, same_period, status: f.charge(
        f"ch_{i:03d}_xYz",
        amount=amount,
        kind=kind,
        status=status,
        created_at=f.CHARGE_AT - timedelta(days=i),
        invoice_id="in_ch_1" if same_invoice else f"in_other_{i}",
        period_start=date(2025, 6, 1) if same_period else date(2024, 1, 1) + timedelta(days=i),
    ),
    i=st.integers(min_value=2, max_value=400),
    amount=st.decimals(min_value=D("0.01"), max_value=D("99999.99"), places=2),
    kind=st.sampled_from(["subscription", "renewal", "late_fee", "one_time", "usage"]),
    same_invoice=st.booleans(),
    same_period=st.booleans(),
    status=st.sampled_from(["succeeded", "failed", "pending"]),
)


@settings(max_examples=80, deadline=None)
@given(others=st.lists(_CHARGE, max_size=15, unique_by=lambda c: c.charge_id), budget=st.integers(min_value=0, max_value=300),
       max_charges=st.integers(min_value=0, max_value=6))  # fmt: skip
def test_any_history_fits_with_whole_lines_and_an_honest_flag(others, budget, max_charges):
    context = f.context(charges=[f.charge(), *others])
    facts = derive_facts(context)
    prompt = build_prompt(context, facts, [], [], PromptBudget(charges_tokens=budget, max_charges=max_charges))
    lines = _charge_lines(prompt)
    assert prompt.section_tokens["charges"] <= budget and len(lines) <= max_charges
    shown = {line.split()[1] for line in lines}
    for line in lines:  # each line is a whole line: it ends with a field, never a marker
        assert not line.endswith(ELLIPSIS) and "[…]" not in line
    relevant = {"ch_1"} | {c.charge_id for c in others if c.invoice_id == "in_ch_1" or c.period_start == date(2025, 6, 1)}
    assert ("charges" in prompt.trimmed) == bool(relevant - shown)
    if lines and "ch_1" in shown:
        assert lines[0].split()[1] == "ch_1"  # the disputed charge leads whenever it is shown
