"""What a model call costs, from a configurable price table (USD per 1M tokens)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel

PER_MILLION = Decimal(1_000_000)
MICRO = Decimal("0.00000001")


class ModelPrice(BaseModel):
    input_per_1m: Decimal
    output_per_1m: Decimal
    # OpenAI bills prompt-cache hits (a repeated prefix of 1,024+ tokens) at a lower rate.
    cached_input_per_1m: Decimal | None = None


DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(
        input_per_1m=Decimal("0.150"), output_per_1m=Decimal("0.600"), cached_input_per_1m=Decimal("0.075")
    ),
    "gpt-4o": ModelPrice(input_per_1m=Decimal("2.50"), output_per_1m=Decimal("10.00"), cached_input_per_1m=Decimal("1.25")),
}


def price_for(model: str, table: dict[str, ModelPrice] | None = None) -> ModelPrice:
    table = DEFAULT_PRICES if table is None else table
    if model in table:
        return table[model]
    # Dated snapshots ("gpt-4o-mini-2024-07-18") bill like their family.
    for name in sorted(table, key=len, reverse=True):
        if model.startswith(name):
            return table[name]
    raise KeyError(f"no price for model {model!r}; add it to the price table (LLM_PRICES)")


def call_cost(price: ModelPrice, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> Decimal:
    cached = min(cached_input_tokens, input_tokens)
    cached_rate = price.cached_input_per_1m if price.cached_input_per_1m is not None else price.input_per_1m
    total = (
        Decimal(input_tokens - cached) * price.input_per_1m
        + Decimal(cached) * cached_rate
        + Decimal(output_tokens) * price.output_per_1m
    ) / PER_MILLION
    return total.quantize(MICRO, rounding=ROUND_HALF_UP)
