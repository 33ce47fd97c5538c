"""Reading and mapping CFPB complaint files: pure, no servers."""

from __future__ import annotations

import csv
import io
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispute_platform.datasets.cfpb import (
    BILLING_ISSUES,
    MAX_DESCRIPTION_CHARS,
    REQUIRED_FOR_OUTCOME,
    CfpbComplaint,
    CfpbFormatError,
    RowProblem,
    UnusableComplaint,
    in_history_split,
    map_dispute_type,
    outcome_label,
    parse_amount,
    read_complaints,
    to_historical,
)
from dispute_platform.domain.masking import contains_card_number
from dispute_platform.domain.models import is_valid_case_id
from dispute_platform_tests.evaluation.hostile import (
    HEADER,
    LONG_NARRATIVE,
    NOT_RESOLVING,
    PURCHASE,
    SOURCE_CSV,
    write_hostile_csv,
)


def read_path(path, **kwargs) -> list[CfpbComplaint | RowProblem]:
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        return list(read_complaints(fh, **kwargs))


def split(items) -> tuple[list[CfpbComplaint], list[RowProblem]]:
    return [i for i in items if isinstance(i, CfpbComplaint)], [i for i in items if isinstance(i, RowProblem)]


# --- the real file ------------------------------------------------------------------------------


def test_the_real_dev_file_reads_and_maps_completely():
    complaints, problems = split(read_path(SOURCE_CSV, required=REQUIRED_FOR_OUTCOME))
    assert len(complaints) == 443 and problems == []
    records = [to_historical(c) for c in complaints]
    assert len({r.case_id for r in records}) == 443
    assert all(is_valid_case_id(r.case_id) and r.case_id.startswith("CFPB-") for r in records)
    assert sum(c.is_billing_dispute for c in complaints) == 160
    outcomes = Counter(r.outcome for r in records)
    assert outcomes == {"Closed with explanation": 302, "Closed with non-monetary relief": 74, "Closed with monetary relief": 67}
    money = [r for r in records if r.outcome == "Closed with monetary relief"]
    assert {r.action for r in money} == {"partial_refund"} and all(r.resolved_amount is None for r in money)
    assert {r.action for r in records if r not in money} == {"deny"}
    assert all(r.source == "cfpb" and r.segment == "consumer" for r in records)
    # Every type the mapping can produce is one of ours; billing disputes never end up general
    # unless nothing in them says what they are.
    types = Counter(r.dispute_type for r, c in zip(records, complaints, strict=True) if c.is_billing_dispute)
    assert types["unauthorized"] > 0 and types["late_fee"] > 0 and types["wrong_amount"] > 0
    # The original issue text is kept in the summary.
    first = records[0]
    assert complaints[0].issue in first.summary and complaints[0].sub_issue in first.summary
    assert not any(contains_card_number(r.description) for r in records)


# --- a hostile file -----------------------------------------------------------------------------


@pytest.fixture
def hostile(tmp_path):
    return write_hostile_csv(tmp_path / "hostile.csv")


def test_a_hostile_file_never_crashes_and_reports_each_bad_row(hostile):
    complaints, problems = split(read_path(hostile, required=REQUIRED_FOR_OUTCOME))
    assert [c.complaint_id for c in complaints] == ["9000001", "9000002", "9000003", "9000005", "9000006", "15017313", "9000001"]
    assert [p.row for p in problems] == [4, 6, 7, 9]
    reasons = {p.row: p.reason for p in problems}
    assert "'12-34X' is not a whole number" in reasons[4]
    assert "13 fields, the header has 12" in reasons[6] and problems[1].complaint_id == "9000010"
    assert "3 fields, the header has 12" in reasons[7]
    assert reasons[9] == "no Complaint ID"
    assert all(p.line > 1 for p in problems) and problems[0].line < problems[1].line
    assert "row 4 (line" in problems[0].describe()


def test_hostile_rows_are_cleaned(hostile):
    complaints, _ = split(read_path(hostile))
    by_id = {c.complaint_id: c for c in complaints}  # the repeat of 9000001 wins here too
    first = complaints[0]
    assert first.narrative.startswith("I was charged twice") and "\n" in first.narrative and "\r" not in first.narrative
    assert '"refund issued"' in first.narrative and "\U0001f620" in first.narrative
    long = by_id["9000002"]
    assert long.narrative_truncated and len(long.narrative) == MAX_DESCRIPTION_CHARS
    controls = by_id["9000003"]
    assert controls.issue == "Fees or interest"
    assert not any(ch in controls.narrative for ch in "\x00\x07\x0b\x1b")
    assert controls.date_received is not None and controls.date_received.date().isoformat() == "2025-08-03"
    placeholder = by_id["9000005"]
    assert placeholder.narrative == "" and placeholder.sub_issue == "" and placeholder.date_received is None
    assert "\ufffd" in by_id["15017313"].narrative  # the undecodable byte, replaced, row kept
    assert by_id["9000001"].narrative == "Second filing of the same complaint."


def test_hostile_rows_map_to_past_cases_or_say_why_not(hostile):
    complaints, _ = split(read_path(hostile))
    by_id = {c.complaint_id: c for c in complaints[:-1]}
    duplicate = to_historical(by_id["9000001"])
    assert duplicate.dispute_type == "duplicate_charge" and duplicate.amount == Decimal("49.99")
    assert "[EMAIL]" in duplicate.description and "jo@example.com" not in duplicate.description
    long = to_historical(by_id["9000002"])
    assert long.amount == Decimal("75.20") and long.dispute_type == "product_not_received"
    assert not contains_card_number(long.description) and "[CARD ****1111]" in long.description
    assert len(long.document()) <= 2000
    fee = to_historical(by_id["9000003"])
    assert fee.dispute_type == "late_fee" and fee.action == "deny" and fee.outcome == "Closed with non-monetary relief"
    empty = to_historical(by_id["9000005"])
    assert empty.description == "" and empty.action == "partial_refund" and empty.resolved_amount is None
    with pytest.raises(UnusableComplaint, match="in progress"):
        to_historical(by_id["9000006"])


def test_a_file_without_complaint_ids_is_refused_before_any_row():
    with pytest.raises(CfpbFormatError, match="Complaint ID"):
        list(read_complaints(io.StringIO("name,amount\nbob,12\n")))
    with pytest.raises(CfpbFormatError, match="Company response to consumer"):
        list(read_complaints(io.StringIO("Complaint ID,Issue\n1,x\n"), required=REQUIRED_FOR_OUTCOME))
    with pytest.raises(CfpbFormatError, match="empty"):
        list(read_complaints(io.StringIO("\n\n")))


def test_api_style_headers_and_a_field_over_csvs_default_limit_are_read():
    narrative = "x" * 200_000  # Python's csv refuses fields over 131,072 characters by default
    text = f'complaint_id,company_response,issue,complaint_what_happened\n42,Closed with explanation,Other,"{narrative}"\n'
    [complaint] = list(read_complaints(io.StringIO(text), required=REQUIRED_FOR_OUTCOME))
    assert complaint.complaint_id == "42" and complaint.narrative_truncated and complaint.company_response


def test_limit_reads_only_the_first_rows():
    with SOURCE_CSV.open(encoding="utf-8-sig", newline="") as fh:
        assert len(list(read_complaints(fh, limit=7))) == 7


# --- mapping ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issue", "sub_issue", "narrative", "expected"),
    [
        (PURCHASE, "Card was charged for something you did not purchase with the card", "not mine", "unauthorized"),
        (
            PURCHASE,
            "Card was charged for something you did not purchase with the card",
            "I was charged twice",
            "duplicate_charge",
        ),
        (PURCHASE, "Overcharged for something you did purchase with the card", "price was higher", "wrong_amount"),
        (PURCHASE, NOT_RESOLVING, "The merchant double charged me", "duplicate_charge"),
        (PURCHASE, NOT_RESOLVING, "These are unauthorized transactions; I never received an alert", "unauthorized"),
        (PURCHASE, NOT_RESOLVING, "I didn’t authorize it", "unauthorized"),
        (PURCHASE, NOT_RESOLVING, "The package never arrived", "product_not_received"),
        (PURCHASE, NOT_RESOLVING, "I cancelled the subscription last month", "cancellation_refund"),
        (PURCHASE, NOT_RESOLVING, "I returned the shoes and got no refund", "cancellation_refund"),
        (PURCHASE, NOT_RESOLVING, "I was overcharged by the hotel", "wrong_amount"),
        (PURCHASE, NOT_RESOLVING, "The room was not as described", "general"),
        ("Fees or interest", "Problem with fees", "They charged a late fee although I paid", "late_fee"),
        ("Fees or interest", "Problem with fees", "An annual fee I never agreed to", "wrong_amount"),
        ("Fees or interest", "Charged too much interest", "interest is wrong", "wrong_amount"),
        ("Late fee", "", "", "late_fee"),
        ("Identity theft / Fraud / Embezzlement", "", "", "unauthorized"),
        ("Incorrect information on your report", "Account status incorrect", "I was charged twice", "general"),
        ("", "", "", "general"),
    ],
)
def test_dispute_type_mapping(issue, sub_issue, narrative, expected):
    assert map_dispute_type(issue, sub_issue, narrative).value == expected


@pytest.mark.parametrize(
    ("response", "label"),
    [
        ("Closed with monetary relief", "money_back"),
        ("closed  with MONETARY relief", "money_back"),
        ("Closed with non-monetary relief", "no_money"),
        ("Closed with explanation", "no_money"),
        ("Closed without relief", "no_money"),
        ("Closed with relief", None),
        ("Closed", None),
        ("In progress", None),
        ("Untimely response", None),
        ("", None),
    ],
)
def test_outcome_labels(response, label):
    assert outcome_label(response) == label


@pytest.mark.parametrize(
    ("narrative", "amount"),
    [
        ("charged {$123.45} on my card", Decimal("123.45")),
        ("charged {$1,500.00} and again {$1,500.00}", Decimal("1500.00")),
        ("charged {$20.00} then {$30.00}", None),
        ("a plain $1,234.5 charge", Decimal("1234.50")),
        ("a plain $99 charge", Decimal("99.00")),
        ("{$40.00} fee, but I also wrote $75", Decimal("40.00")),
        ("no amount here, XXXX", None),
        ("{$0.00} balance", None),
        ("a $5,00000 typo", None),
        ("{$99999999.00} is no dispute", None),
    ],
)
def test_amount_from_the_narrative(narrative, amount):
    assert parse_amount(narrative) == amount


# --- properties ---------------------------------------------------------------------------------

_cell = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(['"', ",", "\n", "\r", "\x00"]),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_cell, min_size=0, max_size=15), max_size=8), st.text(max_size=200))
def test_reading_never_raises_on_any_rows(rows, garbage):
    buffer = io.StringIO()
    csv.writer(buffer).writerow(HEADER)
    csv.writer(buffer).writerows(rows)
    buffer.write(garbage)
    buffer.seek(0)
    for item in read_complaints(buffer, required=REQUIRED_FOR_OUTCOME):
        assert isinstance(item, CfpbComplaint | RowProblem)
        if isinstance(item, CfpbComplaint):
            record = to_historical(item) if outcome_label(item.company_response) else None
            assert record is None or is_valid_case_id(record.case_id)


@given(st.from_regex(r"[0-9]{1,12}", fullmatch=True), st.floats(min_value=0, max_value=1))
def test_the_split_is_deterministic(complaint_id, fraction):
    assert in_history_split(complaint_id, fraction) == in_history_split(complaint_id, fraction)
    assert in_history_split(complaint_id, 0) is False and in_history_split(complaint_id, 1) is True


def test_the_split_takes_about_the_fraction():
    ids = [str(n) for n in range(10_000, 14_000)]
    share = sum(in_history_split(i, 0.3) for i in ids) / len(ids)
    assert 0.27 < share < 0.33


def test_billing_issues_are_the_two_of_the_brief():
    assert BILLING_ISSUES == ("Problem with a purchase shown on your statement", "Fees or interest")
    assert len(LONG_NARRATIVE) == 50_000
