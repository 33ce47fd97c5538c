"""What prompts would cost on a model, including OpenAI's prompt caching. Pure functions.

OpenAI caches the longest prefix of a request that an earlier request shared, once the prompt is
1,024 tokens or longer, in steps of 128 tokens (1,024, 1,152, 1,280 ...); the cached part is
billed at the cached-input price. The prefix is compared on the tokens the model reads, so a
prompt is turned into one token sequence: each message's role marker, then its content tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache

import bpe_openai

from dispute_platform.domain.costs import ModelPrice, call_cost

CACHE_MIN_TOKENS = 1024
CACHE_STEP_TOKENS = 128
ASSUMED_OUTPUT_TOKENS = 250
# Out-of-vocabulary markers for message boundaries: o200k ids are below 2**18.
_ROLE_MARKERS = {"system": -1, "user": -2, "assistant": -3, "developer": -4, "tool": -5}


@lru_cache(maxsize=1)
def _encoding() -> bpe_openai.Encoding:
    return bpe_openai.get_encoding("o200k_base")  # shipped with the package: nothing downloaded


def prompt_tokens(messages: Sequence[dict[str, str]]) -> list[int]:
    """The prompt as one token sequence: a boundary marker per message, then its content."""
    tokens: list[int] = []
    for message in messages:
        tokens.append(_ROLE_MARKERS.get(message["role"], -9))
        tokens.extend(_encoding().encode_ordinary(message["content"]))
    return tokens


def shared_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def cacheable_tokens(shared_prefix: int, prompt_tokens_total: int) -> int:
    """Tokens billed at the cached price for a request whose first `shared_prefix` tokens an
    earlier request also had: nothing under 1,024, else whole 128-token steps from 1,024."""
    if prompt_tokens_total < CACHE_MIN_TOKENS or shared_prefix < CACHE_MIN_TOKENS:
        return 0
    usable = min(shared_prefix, prompt_tokens_total)
    return CACHE_MIN_TOKENS + (usable - CACHE_MIN_TOKENS) // CACHE_STEP_TOKENS * CACHE_STEP_TOKENS


def cached_tokens_in_sequence(sequences: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """For each prompt, sent in this order with every earlier one still in the cache: (longest
    prefix shared with an earlier prompt, tokens that would be billed as cached)."""
    out: list[tuple[int, int]] = []
    for index, tokens in enumerate(sequences):
        shared = max((shared_prefix_length(tokens, earlier) for earlier in sequences[:index]), default=0)
        # The role markers stand for the chat framing tokens, already in the prompt's count.
        out.append((shared, cacheable_tokens(shared, len(tokens))))
    return out


def would_be_cost(
    price: ModelPrice, input_tokens: int, output_tokens: int = ASSUMED_OUTPUT_TOKENS, cached_input_tokens: int = 0
) -> Decimal:
    """The cost of one call with these token counts (cached tokens at the cached price)."""
    return call_cost(price, input_tokens, output_tokens, cached_input_tokens)
