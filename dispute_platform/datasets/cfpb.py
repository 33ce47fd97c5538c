"""Complaints in the CFPB Consumer Complaint Database's CSV format, read and mapped to our terms.
Pure functions: lines in, complaints (or the reason a row was unusable) out.

The bureau's export has 16 or 18 columns (Date received ... Complaint ID); files in the wild add
or drop columns, reorder them, start with a BOM, quote multi-line narratives, carry odd control
characters, or were round-tripped through a spreadsheet ("None" for empty, "15017313.0" for an
id). Only the Complaint ID column is required to read a file; a row that cannot be used is
returned as a `RowProblem` with its row and line number and never stops the rest.

Mapping decisions (docs/evaluation.md repeats them):

- case id: `CFPB-<Complaint ID>`; an id that is not a whole number is a bad row.
- outcome, from "Company response to consumer": "Closed with monetary relief" is *money back*;
  "Closed with non-monetary relief", "Closed with explanation" and the older "Closed without
  relief" are *no money*. Non-monetary relief (a corrected report, a closed account) moves no
  money, so it is not `credit` (which is money on the account): it is recorded as `deny` with the
  bureau's wording kept in `outcome`. "Closed with relief" (before 2012 it did not say which
  kind), "Closed", "In progress" and "Untimely response" say nothing about money: such rows are
  reported and skipped.
- action: money back is `partial_refund` with `resolved_amount` None: the bureau never says how
  much came back, and "partial" is the refund kind that claims the least (the precedent engine
  and the evaluation treat both refund kinds alike). No money is `deny` with 0.00.
- dispute type, from Issue / Sub-issue and then keywords in the narrative (see
  `map_dispute_type`); anything that is not about a charge on a statement or a fee is `general`.
  The original issue and sub-issue text is kept in the summary.
- amount: the narrative's dollar figure when exactly one distinct figure appears ("{$123.45}",
  the bureau's redaction format, or a plain "$123.45"); several different figures or none: None.
- description: the narrative, control characters stripped, cut to 20,000 characters, and masked
  (cards, e-mails, phones) before it is stored or embedded.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

from pydantic import BaseModel

from dispute_platform.domain.knowledge import HistoricalResolution
from dispute_platform.domain.masking import mask_pii
from dispute_platform.domain.models import (
    MAX_DESCRIPTION_CHARS,
    MAX_EVENT_AMOUNT,
    Action,
    DisputeType,
    strip_control_chars,
)

SOURCE = "cfpb"
CASE_ID_PREFIX = "CFPB-"
MONEY_BACK: Final = "money_back"
NO_MONEY: Final = "no_money"
OutcomeLabel = Literal["money_back", "no_money"]
# A real narrative is at most a few tens of thousands of characters; Python's csv module refuses
# fields over 128 KiB by default, which would turn one long narrative into a bad row.
CSV_FIELD_LIMIT = 16 * 1024 * 1024
MAX_SUMMARY_FIELD_CHARS = 200

PURCHASE_ISSUE = "Problem with a purchase shown on your statement"
FEES_ISSUE = "Fees or interest"
BILLING_ISSUES = (PURCHASE_ISSUE, FEES_ISSUE)

# Canonical field -> accepted header spellings, compared after `_header_key` (case, spaces,
# '-', '_' and '?' do not matter). The second spelling of several is the bureau's API names.
_HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "date_received": ("date received",),
    "product": ("product",),
    "sub_product": ("sub product",),
    "issue": ("issue",),
    "sub_issue": ("sub issue",),
    "narrative": ("consumer complaint narrative", "complaint what happened", "narrative"),
    "company_public_response": ("company public response",),
    "company": ("company",),
    "state": ("state",),
    "zip_code": ("zip code", "zipcode", "zip"),
    "tags": ("tags",),
    "submitted_via": ("submitted via",),
    "date_sent_to_company": ("date sent to company",),
    "company_response": ("company response to consumer", "company response"),
    "timely_response": ("timely response", "timely"),
    "complaint_id": ("complaint id", "complaint number"),
}
_HEADER_LOOKUP = {alias: field for field, aliases in _HEADER_ALIASES.items() for alias in aliases}
REQUIRED_TO_READ = ("complaint_id",)
REQUIRED_FOR_OUTCOME = ("complaint_id", "company_response")
COLUMN_TITLES = {
    "complaint_id": "Complaint ID",
    "company_response": "Company response to consumer",
    "narrative": "Consumer complaint narrative",
    "issue": "Issue",
}

# What spreadsheets and data-frame exports write for an empty cell.
_EMPTY_MARKERS = {"", "none", "nan", "null", "n/a", "na"}
_COMPLAINT_ID = re.compile(r"\d{1,20}(?:\.0+)?")


class CfpbFormatError(ValueError):
    """The file is not in the bureau's format at all (e.g. no Complaint ID column)."""


class CfpbComplaint(BaseModel):
    """One row of the bureau's file, cleaned: text fields are stripped of control characters,
    spreadsheet placeholders for empty ("None", "nan") are empty strings."""

    row: int
    line: int
    complaint_id: str
    date_received: datetime | None = None
    product: str = ""
    sub_product: str = ""
    issue: str = ""
    sub_issue: str = ""
    narrative: str = ""
    narrative_truncated: bool = False
    company_public_response: str = ""
    company: str = ""
    state: str = ""
    zip_code: str = ""
    tags: str = ""
    submitted_via: str = ""
    date_sent_to_company: datetime | None = None
    company_response: str = ""
    timely_response: str = ""

    @property
    def case_id(self) -> str:
        return CASE_ID_PREFIX + self.complaint_id

    @property
    def is_billing_dispute(self) -> bool:
        return self.issue in BILLING_ISSUES


class RowProblem(BaseModel):
    """A row that was skipped, and why."""

    row: int  # data row, 1 = the first row after the header
    line: int  # physical line of the file where the row starts (narratives span lines)
    complaint_id: str | None = None
    reason: str

    def describe(self) -> str:
        who = f" (complaint {self.complaint_id})" if self.complaint_id else ""
        return f"row {self.row} (line {self.line}){who}: {self.reason}"


# --- reading ----------------------------------------------------------------------------------


def _header_key(name: str) -> str:
    cleaned = strip_control_chars(name).replace("\ufeff", "").strip().lower()
    cleaned = re.sub(r"[\s_\-?]+", " ", cleaned)
    return cleaned.strip()


def map_header(header: list[str]) -> dict[int, str]:
    """Column index -> canonical field; unknown columns are ignored (the first of duplicates wins)."""
    mapping: dict[int, str] = {}
    seen: set[str] = set()
    for index, name in enumerate(header):
        field = _HEADER_LOOKUP.get(_header_key(name))
        if field and field not in seen:
            mapping[index] = field
            seen.add(field)
    return mapping


def missing_columns(header: list[str], required: Iterable[str]) -> list[str]:
    present = set(map_header(header).values())
    return [COLUMN_TITLES.get(f, f) for f in required if f not in present]


def _clean(value: str) -> str:
    text = strip_control_chars(value.replace("\r\n", "\n").replace("\r", "\n")).strip()
    return "" if text.lower() in _EMPTY_MARKERS else text


_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%Y/%m/%d", "%d-%b-%Y", "%Y-%m-%d %H:%M:%S")


def parse_date(value: str) -> datetime | None:
    """The bureau's dates (ISO, 'MM/DD/YY', 'MM/DD/YYYY', with or without a time) as UTC; None
    when unreadable: a date is not worth losing the row for."""
    text = value.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
        for fmt in _DATE_FORMATS:
            try:
                moment = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if moment is None or not (1990 <= moment.year <= 2100):
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _complaint_from_row(row_number: int, line: int, values: dict[str, str]) -> CfpbComplaint | RowProblem:
    raw_id = _clean(values.get("complaint_id", ""))
    if not raw_id:
        return RowProblem(row=row_number, line=line, reason="no Complaint ID")
    if not _COMPLAINT_ID.fullmatch(raw_id):
        shown = raw_id[:40] + ("..." if len(raw_id) > 40 else "")
        return RowProblem(row=row_number, line=line, reason=f"Complaint ID {shown!r} is not a whole number")
    complaint_id = str(int(raw_id.split(".")[0]))
    text = {field: _clean(value) for field, value in values.items()}
    narrative = text.get("narrative", "")
    truncated = len(narrative) > MAX_DESCRIPTION_CHARS
    return CfpbComplaint(
        row=row_number,
        line=line,
        complaint_id=complaint_id,
        date_received=parse_date(text.get("date_received", "")),
        product=text.get("product", ""),
        sub_product=text.get("sub_product", ""),
        issue=text.get("issue", ""),
        sub_issue=text.get("sub_issue", ""),
        narrative=narrative[:MAX_DESCRIPTION_CHARS],
        narrative_truncated=truncated,
        company_public_response=text.get("company_public_response", ""),
        company=text.get("company", ""),
        state=text.get("state", ""),
        zip_code=text.get("zip_code", ""),
        tags=text.get("tags", ""),
        submitted_via=text.get("submitted_via", ""),
        date_sent_to_company=parse_date(text.get("date_sent_to_company", "")),
        company_response=text.get("company_response", ""),
        timely_response=text.get("timely_response", ""),
    )


def read_complaints(
    lines: Iterable[str], *, required: Iterable[str] = REQUIRED_TO_READ, limit: int | None = None
) -> Iterator[CfpbComplaint | RowProblem]:
    """Each data row as a complaint or a problem, in file order, streaming (a file of millions
    of rows never sits in memory). `lines` is an open text file (newline='') or any iterable of
    lines. `limit` stops after that many data rows. Raises `CfpbFormatError` only when the header
    lacks a `required` column, before any row is read."""
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(iter(lines))
    header: list[str] | None = None
    while header is None:
        try:
            candidate = next(reader)
        except StopIteration:
            raise CfpbFormatError("the file is empty: no header row") from None
        if any(cell.strip() for cell in candidate):
            header = candidate
    columns = map_header(header)
    if missing := missing_columns(header, required):
        found = ", ".join(repr(h.strip()[:40]) for h in header[:20])
        raise CfpbFormatError(
            f"not a CFPB complaints file: no {', '.join(repr(m) for m in missing)} column (the header has: {found})"
        )
    width = len(header)
    id_index = next((i for i, f in columns.items() if f == "complaint_id"), None)
    row_number = 0
    previous_end = reader.line_num
    while limit is None or row_number < limit:
        start = previous_end + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row_number += 1
            previous_end = reader.line_num
            yield RowProblem(row=row_number, line=start, reason=f"unreadable CSV: {exc}")
            continue
        previous_end = reader.line_num
        if not any(cell.strip() for cell in record):
            continue  # a blank line is not a row
        row_number += 1
        if len(record) != width:
            # A short or long row means quoting went wrong around it: its cells are not where
            # the header says, so no field of it can be trusted.
            raw_id = record[id_index] if id_index is not None and len(record) > id_index else None
            yield RowProblem(
                row=row_number,
                line=start,
                complaint_id=raw_id.strip()[:40] if raw_id and _COMPLAINT_ID.fullmatch(raw_id.strip()) else None,
                reason=f"the row has {len(record)} fields, the header has {width} (broken quoting?)",
            )
            continue
        yield _complaint_from_row(row_number, start, {field: record[i] for i, field in columns.items()})


# --- mapping ----------------------------------------------------------------------------------


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(patterns), re.IGNORECASE)


# Keyword groups, tried in this order on the narrative: the first that matches decides. A
# duplicate claim usually also says "not authorized" for the second charge, and an unauthorized
# one often says "I never received (an alert)", hence duplicate, then unauthorized, then the rest.
DUPLICATE_WORDS = _any(
    r"\bcharged (me )?(twice|two times|2 times|double)",
    r"\bdouble[- ]?(charged|charge|billed|billing)",
    r"\bduplicat(e|ed)\b",
    r"\bbilled (me )?twice",
    r"\bsame (charge|transaction|purchase) (twice|two times)",
)
UNAUTHORIZED_WORDS = _any(
    r"\bunauthori[sz]ed",
    r"\b(did ?n[o'’]?t|never|not) authori[sz]e",
    r"\bwithout my (authori[sz]ation|permission|consent|knowledge)",
    r"\bfraudulent",
    r"\bfraud\b",
    r"\bstolen\b",
    r"\bidentity theft",
    r"\b(did ?n[o'’]?t|never) (make|made) (this|these|those|the) (purchase|charge|transaction)s?",
    r"\b(do ?n[o'’]?t|did ?n[o'’]?t) recogni[sz]e",
)
NOT_RECEIVED_WORDS = _any(
    r"\bnever (received|arrived|delivered|got|shipped|came)",
    r"\bnot (been )?(received|delivered|shipped)",
    r"\b(did ?n[o'’]?t|did not) (receive|get) (the|my|any|an?)\b",
    r"\bnon[- ]?delivery",
    r"\bnever showed up",
    r"\bwas(n[’']?t| not) delivered",
    r"\bno (item|items|product|package|order) (was )?(received|delivered)",
)
REFUND_WORDS = _any(
    r"\bcancel+(ed|ation|ing)?\b",
    r"\bsubscription",
    r"\bmembership",
    r"\breturn(ed|ing)? (the|it|them|my|all)\b",
    r"\brefund",
)
WRONG_AMOUNT_WORDS = _any(
    r"\bovercharg",
    r"\bcharged (me )?more than",
    r"\b(wrong|incorrect) amount",
    r"\bhigher than (the )?(quoted|agreed|advertised|listed)",
)
LATE_FEE_WORDS = _any(r"\blate (payment )?fees?\b", r"\blate charges?\b", r"\bpast due fees?\b")

_KEYWORD_ORDER: tuple[tuple[re.Pattern[str], DisputeType], ...] = (
    (DUPLICATE_WORDS, DisputeType.DUPLICATE_CHARGE),
    (UNAUTHORIZED_WORDS, DisputeType.UNAUTHORIZED),
    (NOT_RECEIVED_WORDS, DisputeType.PRODUCT_NOT_RECEIVED),
    (REFUND_WORDS, DisputeType.CANCELLATION_REFUND),
    (WRONG_AMOUNT_WORDS, DisputeType.WRONG_AMOUNT),
)

# Sub-issues of the purchase issue that already say what kind of dispute it is (a duplicate is
# still recognised by its words: "charged for something I did not purchase: the second charge").
_PURCHASE_SUB_ISSUES = {
    "card was charged for something you did not purchase with the card": DisputeType.UNAUTHORIZED,
    "overcharged for something you did purchase with the card": DisputeType.WRONG_AMOUNT,
}
# The bureau's credit card issues before its 2017 taxonomy.
_LEGACY_ISSUES = {
    "late fee": DisputeType.LATE_FEE,
    "other fee": DisputeType.WRONG_AMOUNT,
    "apr or interest rate": DisputeType.WRONG_AMOUNT,
    "identity theft / fraud / embezzlement": DisputeType.UNAUTHORIZED,
}
_LEGACY_BILLING_ISSUES = {"billing disputes", "billing statement", "transaction issue"}


def map_dispute_type(issue: str, sub_issue: str, narrative: str) -> DisputeType:
    """One of our eight dispute types for a complaint.

    - "Problem with a purchase shown on your statement": the sub-issue "charged for something you
      did not purchase" is `unauthorized`, "overcharged for something you did purchase" is
      `wrong_amount` (either is `duplicate_charge` when the narrative says charged twice); any
      other sub-issue ("isn't resolving a dispute about a purchase") is decided by the
      narrative's words: duplicate, unauthorized, not received, cancellation/return/refund
      (`cancellation_refund`), overcharge (`wrong_amount`), in that order; none of them:
      `general` (quality, "not as described": no specific policy covers it).
    - "Fees or interest": `late_fee` when the text speaks of a late fee, else `wrong_amount`
      (interest charged, other fees: a disputed amount).
    - the older taxonomy's "Late fee", "Other fee", "APR or interest rate", "Identity theft /
      Fraud / Embezzlement" and "Billing disputes" likewise.
    - anything else (credit reports, applications, rewards, closing an account ...): `general`.
    """
    issue_key = " ".join(issue.lower().split())
    sub_key = " ".join(sub_issue.lower().split())
    if issue_key == PURCHASE_ISSUE.lower() or issue_key in _LEGACY_BILLING_ISSUES:
        if DUPLICATE_WORDS.search(narrative):
            return DisputeType.DUPLICATE_CHARGE
        if sub_key in _PURCHASE_SUB_ISSUES:
            return _PURCHASE_SUB_ISSUES[sub_key]
        for pattern, dispute_type in _KEYWORD_ORDER:
            if pattern.search(narrative):
                return dispute_type
        return DisputeType.GENERAL
    if issue_key == FEES_ISSUE.lower():
        if LATE_FEE_WORDS.search(sub_issue) or LATE_FEE_WORDS.search(narrative):
            return DisputeType.LATE_FEE
        return DisputeType.WRONG_AMOUNT
    if issue_key in _LEGACY_ISSUES:
        return _LEGACY_ISSUES[issue_key]
    return DisputeType.GENERAL


_RESPONSE_LABELS: dict[str, OutcomeLabel] = {
    "closed with monetary relief": MONEY_BACK,
    "closed with non-monetary relief": NO_MONEY,
    "closed with non monetary relief": NO_MONEY,
    "closed with explanation": NO_MONEY,
    "closed without relief": NO_MONEY,
}
_UNDECIDED_RESPONSES = {
    "closed with relief": "says relief without saying whether money came back (pre-2012 wording)",
    "closed": "says only 'Closed', not whether money came back",
    "in progress": "is still in progress: no outcome yet",
    "untimely response": "is an untimely response: no outcome",
}


def outcome_label(company_response: str) -> OutcomeLabel | None:
    """money_back / no_money for the bureau's "Company response to consumer", None when it does
    not say (see `outcome_problem`)."""
    return _RESPONSE_LABELS.get(" ".join(company_response.lower().split()))


def outcome_problem(company_response: str) -> str | None:
    """Why a response gives no outcome, or None when it does."""
    key = " ".join(company_response.lower().split())
    if key in _RESPONSE_LABELS:
        return None
    if not key:
        return "no 'Company response to consumer': the outcome is unknown"
    detail = _UNDECIDED_RESPONSES.get(key, "is not a response this import knows")
    return f"company response {company_response[:60]!r} {detail}"


_BRACED_AMOUNT = re.compile(r"\{\s*\$\s*(\d[\d,]*(?:\.\d{1,2})?)\s*\}")
_PLAIN_AMOUNT = re.compile(r"(?<![\w{$])\$\s?(\d{1,3}(?:,\d{3})+|\d+)(\.\d{1,2})?(?![\d,]*\d)(?!\.\d)")


def _money(text: str) -> Decimal | None:
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    if value <= 0 or value > MAX_EVENT_AMOUNT:
        return None
    return value.quantize(Decimal("0.01"))


def parse_amount(narrative: str) -> Decimal | None:
    """The disputed amount when the narrative states exactly one distinct dollar figure.

    The bureau writes amounts as "{$123.45}"; when any appear, only those count. Otherwise a
    plain "$123.45" / "$1,234" counts. Several different figures (a charge, a balance, a credit
    limit ...) are not a clear amount: None, as for no figure at all."""
    braced = [m.group(1) for m in _BRACED_AMOUNT.finditer(narrative)]
    found = braced or [m.group(1) + (m.group(2) or "") for m in _PLAIN_AMOUNT.finditer(narrative)]
    values = {v for v in (_money(text) for text in found) if v is not None}
    return values.pop() if len(values) == 1 else None


def _short(text: str) -> str:
    return text if len(text) <= MAX_SUMMARY_FIELD_CHARS else text[: MAX_SUMMARY_FIELD_CHARS - 3] + "..."


def case_summary(complaint: CfpbComplaint) -> str:
    """The past case's summary: the bureau's issue and sub-issue as written, and its outcome."""
    issue = _short(complaint.issue) or "no issue given"
    sub = f" / {_short(complaint.sub_issue)}" if complaint.sub_issue else ""
    response = complaint.company_response or "no company response"
    money = " Amount not disclosed." if outcome_label(complaint.company_response) == MONEY_BACK else ""
    product = _short(complaint.product) or "consumer financial product"
    return f"CFPB complaint ({product}): {issue}{sub}. {response}.{money}"


class UnusableComplaint(ValueError):
    """A complaint that reads fine but cannot become a past case (no outcome)."""


def to_historical(complaint: CfpbComplaint) -> HistoricalResolution:
    """The complaint as a past resolution; raises `UnusableComplaint` when it has no outcome."""
    label = outcome_label(complaint.company_response)
    if label is None:
        raise UnusableComplaint(outcome_problem(complaint.company_response) or "no outcome")
    money_back = label == MONEY_BACK
    return HistoricalResolution(
        case_id=complaint.case_id,
        customer_id=None,
        segment="consumer",
        dispute_type=map_dispute_type(complaint.issue, complaint.sub_issue, complaint.narrative).value,
        amount=parse_amount(complaint.narrative),
        currency="USD",
        description=mask_pii(complaint.narrative),
        action=(Action.PARTIAL_REFUND if money_back else Action.DENY).value,
        resolved_amount=None if money_back else Decimal("0.00"),
        citations=[],
        summary=case_summary(complaint),
        outcome=complaint.company_response,
        resolved_at=None,  # the bureau publishes no closing date
        source=SOURCE,
    )


def in_history_split(complaint_id: str, fraction: float) -> bool:
    """Deterministic split by complaint id (not by row order): True for about `fraction` of ids.
    The same id lands on the same side in every file and every run."""
    if fraction <= 0:
        return False
    if fraction >= 1:
        return True
    digest = hashlib.sha256(f"cfpb-split:{complaint_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction
