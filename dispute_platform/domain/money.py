"""Amounts compared across currencies: the four-eyes and escalation thresholds are in USD.

The rate table is a deployment setting (FX_RATES_TO_USD), never run config. A currency without a
rate has no USD value; callers treat that as "above every threshold" (two reviewers, escalation),
so a 999 KWD refund can never slip under a USD limit by being in a currency nobody priced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

# Units of USD per one unit of the currency. Indicative rates for the embedded default; a
# deployment that pays in other currencies sets its own table.
DEFAULT_USD_RATES: dict[str, Decimal] = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.08"),
    "GBP": Decimal("1.27"),
    "CAD": Decimal("0.73"),
    "AUD": Decimal("0.66"),
    "CHF": Decimal("1.13"),
    "JPY": Decimal("0.0067"),
    "KWD": Decimal("3.25"),
}


def parse_rates(text: str | None) -> dict[str, Decimal]:
    """A JSON object of currency -> USD per unit (`{"EUR": "1.08"}`); None gives the default table."""
    if text is None or not text.strip():
        return dict(DEFAULT_USD_RATES)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"FX_RATES_TO_USD is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError('FX_RATES_TO_USD must be a JSON object such as {"USD": 1, "EUR": "1.08"}')
    rates: dict[str, Decimal] = {}
    for code, value in raw.items():
        if not isinstance(code, str) or len(code) != 3 or not code.isalpha() or not code.isupper():
            raise ValueError(f"FX_RATES_TO_USD: {code!r} is not an ISO 4217 code (three capital letters)")
        try:
            rate = Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError(f"FX_RATES_TO_USD: the rate of {code} is not a number: {value!r}") from exc
        if not rate.is_finite() or rate <= 0:
            raise ValueError(f"FX_RATES_TO_USD: the rate of {code} must be above zero, not {value!r}")
        rates[code] = rate
    return rates


def usd_value(amount: Decimal, currency: str, rates: Mapping[str, Decimal]) -> Decimal | None:
    """The amount in USD, or None when the currency has no rate."""
    rate = rates.get((currency or "").upper())
    return None if rate is None else amount * rate


def above_threshold(amount: Decimal, currency: str, threshold_usd: Decimal, rates: Mapping[str, Decimal]) -> bool:
    """Whether an amount is above a USD threshold; an unpriced currency always is."""
    value = usd_value(amount, currency, rates)
    return value is None or value > threshold_usd
