"""Card numbers, e-mail addresses and phone numbers are masked before any text leaves for a
model or reaches a log. Over-masking an order number is a fair price for never leaking a card."""

from __future__ import annotations

import re

# 13 to 19 digits, optionally grouped by spaces, dashes or dots (4-4-4-4, 4-6-5 for Amex ...).
# A dot before the digits does not protect them ("card no.4111..."): over-masking a long decimal
# is the fair price again.
_CARD = re.compile(r"(?<![\w])(?:\d[ \-.]?){12,18}\d(?![\w])")
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+\-]+(?:@|\s*[\[(]\s*at\s*[\])]\s*)[A-Za-z0-9\-]+"
    r"(?:(?:\.|\s*[\[(]\s*dot\s*[\])]\s*)[A-Za-z0-9\-]+)*(?:\.|\s*[\[(]\s*dot\s*[\])]\s*)[A-Za-z]{2,}",
    re.IGNORECASE,
)
# North-American and international spellings: +1 (555) 123-4567, 555.123.4567, +44 20 7946 0958 ...
_PHONE = re.compile(r"(?<![\w$])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)|\d{2,4})[\s.\-]?\d{3,4}[\s.\-]?\d{3,4}(?![\w])")
_DIGITS = re.compile(r"\d")
# A statement line ("2025-08-03 120.00") runs 13+ digits together with separators, yet every
# space-separated part is an ISO date or an amount in cents: that is not a card.
_DATE_OR_AMOUNT = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,9}\.\d{2}")


def _is_dates_and_amounts(text: str) -> bool:
    return all(_DATE_OR_AMOUNT.fullmatch(part) for part in text.split(" "))


def _mask_card(match: re.Match[str]) -> str:
    if _is_dates_and_amounts(match.group()):
        return match.group()
    digits = _DIGITS.findall(match.group())
    return f"[CARD ****{''.join(digits[-4:])}]"


def _mask_phone(match: re.Match[str]) -> str:
    text = match.group()
    digits = _DIGITS.findall(text)
    # Dates (2025-08-03) and amounts with separators are not phone numbers.
    if len(digits) < 10 or re.fullmatch(r"\d{4}[-./]\d{2}[-./]\d{2}", text.strip()):
        return text
    return "[PHONE]"


def mask_pii(text: str) -> str:
    """Mask cards first (the longest digit runs), then e-mails, then phones."""
    text = _CARD.sub(_mask_card, text)
    text = _EMAIL.sub("[EMAIL]", text)
    return _PHONE.sub(_mask_phone, text)


def contains_card_number(text: str) -> bool:
    """True when an unmasked card-like digit run remains (used by tests and log scans)."""
    return any(not _is_dates_and_amounts(m.group()) for m in _CARD.finditer(text))
