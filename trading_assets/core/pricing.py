"""Token prices per model and the estimated USD cost of a language-model call (pure, no I/O).

Prices are public list prices in USD per million tokens. They drift, so the table is only a
default: `LLM_PRICES` (JSON) overrides or extends it, and a self-hosted model is free unless
priced there. An unknown model costs 0 and says so (`Price.known` is False), so a cost cap
cannot silently pretend to protect a model it cannot price.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    """USD per one million input (prompt) and output (completion) tokens."""

    input_per_1m: float
    output_per_1m: float
    known: bool = True


UNKNOWN_PRICE = Price(0.0, 0.0, known=False)

# OpenAI list prices (standard tier, USD per 1M tokens). Dated snapshots such as
# "gpt-4o-mini-2024-07-18" match their family by prefix.
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
    "o3": Price(2.00, 8.00),
    "o4-mini": Price(1.10, 4.40),
}


class PriceTableError(ValueError):
    """LLM_PRICES is not the JSON object the cost estimate needs."""


def parse_prices(raw: str) -> dict[str, Price]:
    """Parse LLM_PRICES: {"model": [input_per_1m, output_per_1m]} or {"model": {"input": ..,
    "output": ..}}; an empty string means no overrides."""
    if not raw.strip():
        return {}
    example = 'LLM_PRICES=\'{"llama3.1:8b": [0, 0], "gpt-4o-mini": [0.15, 0.60]}\''
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PriceTableError(f"LLM_PRICES is not valid JSON ({exc.msg}). Example: {example}") \
            from None
    if not isinstance(data, dict):
        raise PriceTableError(f"LLM_PRICES must be a JSON object. Example: {example}")
    prices: dict[str, Price] = {}
    for model, value in data.items():
        if isinstance(value, dict):
            value = [value.get("input"), value.get("output")]
        if not (isinstance(value, list) and len(value) == 2
                and all(isinstance(v, int | float) and v >= 0 for v in value)):
            raise PriceTableError(
                f"LLM_PRICES[{model!r}] must be [input_usd_per_1M, output_usd_per_1M] with "
                f"non-negative numbers, got {value!r}. Example: {example}"
            )
        prices[str(model)] = Price(float(value[0]), float(value[1]))
    return prices


def price_for(model: str, overrides: Mapping[str, Price] | None = None) -> Price:
    """The override or default price of `model`: exact name first, then the longest known
    prefix (dated snapshots), else UNKNOWN_PRICE."""
    table = {**DEFAULT_PRICES, **(overrides or {})}
    if model in table:
        return table[model]
    prefixes = [name for name in table if model.startswith(name + "-")]
    return table[max(prefixes, key=len)] if prefixes else UNKNOWN_PRICE


def estimate_cost(price: Price, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for one call's tokens at `price`."""
    return (prompt_tokens * price.input_per_1m + completion_tokens * price.output_per_1m) / 1e6
