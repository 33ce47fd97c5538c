"""A hand-made CFPB-format file with everything a real export (or a spreadsheet round trip) can
throw at the reader: BOM, CRLF, reordered and missing optional columns, an unknown column,
quoted multi-line narratives, a 50,000-character narrative, control characters, an undecodable
byte, a broken Complaint ID, a short and a long row, blank lines, "None" placeholders, a repeated
complaint id and responses that carry no outcome."""

from __future__ import annotations

import csv
import io
from pathlib import Path

SOURCE_CSV = Path(__file__).resolve().parent.parent / "data" / "cfpb_credit_card_dev.csv"

# Reordered, without Tags / ZIP code / State / Company public response / Sub-product, with an
# extra column the bureau's newer exports have.
HEADER = [
    "Complaint ID",
    "Company response to consumer",
    "Issue",
    "Sub-issue",
    "Consumer consent provided?",
    "Consumer complaint narrative",
    "Date received",
    "Product",
    "Company",
    "Submitted via",
    "Date sent to company",
    "Timely response?",
]
LONG_NARRATIVE = (
    "My card 4111 1111 1111 1111 was charged {$75.20} for a purchase I never received. "
    + "The merchant keeps ignoring me and the bank keeps closing my dispute. " * 800
)[:50_000]

PURCHASE = "Problem with a purchase shown on your statement"
NOT_RESOLVING = "Credit card company isn't resolving a dispute about a purchase on your statement"


def _row(cid: str, response: str, issue: str, sub: str, narrative: str, received: str = "2025-09-01") -> list[str]:
    return [cid, response, issue, sub, "Consent provided", narrative, received, "Credit card", "Some Bank",
            "Web", received, "Yes"]  # fmt: skip


GOOD_IDS = {"9000001", "9000002", "9000003", "9000005", "15017313"}


def hostile_rows() -> list[list[str]]:
    """The well-formed rows, as cells (the broken ones are written raw by `write_hostile_csv`)."""
    return [
        # 1: multi-line quoted narrative, inner quotes, emoji, an e-mail to mask
        _row(
            "9000001",
            "Closed with monetary relief",
            PURCHASE,
            NOT_RESOLVING,
            'I was charged twice for the same order ({$49.99}).\r\nThe store said "refund issued" \U0001f620\nmail me: jo@example.com',
        ),
        # 2: a 50,000-character narrative with a card number
        _row("9000002", "Closed with explanation", PURCHASE, NOT_RESOLVING, LONG_NARRATIVE),
        # 3: control characters everywhere
        _row(
            "9000003",
            "Closed with non-monetary relief",
            "Fees or\x07 interest",
            "Problem with fees",
            "Late fee\x00 of {$40.00}\x1b[31m charged \x0bagain",
            received="08/03/25",
        ),
        # 4: a broken Complaint ID
        _row("12-34X", "Closed with explanation", PURCHASE, NOT_RESOLVING, "id is broken"),
        # 5: empty narrative, spreadsheet placeholders
        _row("9000005", "Closed with monetary relief", "Fees or interest", "None", "None", received="not a date"),
        # 6: no outcome yet
        _row("9000006", "In progress", PURCHASE, NOT_RESOLVING, "still waiting"),
        # 7: an empty Complaint ID
        _row("", "Closed with explanation", PURCHASE, NOT_RESOLVING, "no id at all"),
        # 8: spreadsheet-style id, a repeat of nothing
        _row("15017313.0", "Closed with explanation", "Getting a credit card", "Application denied", "Denied again."),
        # 9: repeats complaint 9000001: the later row wins
        _row("9000001", "Closed with explanation", PURCHASE, NOT_RESOLVING, "Second filing of the same complaint."),
    ]


def write_hostile_csv(path: Path) -> Path:
    rows = hostile_rows()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    for i, row in enumerate(rows):
        writer.writerow(row)
        if i == 2:
            buffer.write("\r\n\r\n")  # blank lines are not rows
        if i == 4:
            # a long row: an unquoted comma in the narrative
            buffer.write(
                "9000010,Closed with explanation,Fees or interest,Problem with fees,x,fee, unquoted,2025-09-01,Credit card,B,Web,2025-09-01,Yes\r\n"
            )
            # a short row
            buffer.write("9000011,Closed with explanation,Fees or interest\r\n")
    data = b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")
    # An undecodable byte inside a good row's narrative ("Denied again.").
    data = data.replace(b"Denied again.", b"Denied \xff again.")
    path.write_bytes(data)
    return path


def write_slice(path: Path, rows: int, source: Path = SOURCE_CSV) -> Path:
    """The header and the first `rows` records of the real file (records, not lines)."""
    with source.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        records = [next(reader) for _ in range(rows + 1)]
    buffer = io.StringIO()
    csv.writer(buffer).writerows(records)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path
