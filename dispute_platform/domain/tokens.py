"""o200k_base token counts (gpt-4o family), offline: bpe-openai ships the vocabulary, while
tiktoken would download it on first use."""

from __future__ import annotations

from functools import lru_cache

import bpe_openai

# OpenAI's accounting for chat messages: each message costs its content plus a few tokens of
# framing, and the reply is primed with a few more (the cookbook's num_tokens_from_messages).
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING_TOKENS = 3
ELLIPSIS = " […]"


@lru_cache(maxsize=1)
def _encoding() -> bpe_openai.Encoding:
    return bpe_openai.get_encoding("o200k_base")


def count_tokens(text: str) -> int:
    return len(_encoding().encode_ordinary(text)) if text else 0


def trim_to_tokens(text: str, budget: int) -> str:
    """`text` cut to at most `budget` tokens, with a visible marker when something was cut."""
    if budget <= 0 or not text:
        return ""
    tokens = _encoding().encode_ordinary(text)
    if len(tokens) <= budget:
        return text
    marker = count_tokens(ELLIPSIS)
    keep = max(0, budget - marker)
    trimmed = _encoding().decode(tokens[:keep])
    # A cut inside a multi-byte character decodes to U+FFFD; drop it.
    trimmed = trimmed.rstrip("\ufffd") + ELLIPSIS
    while count_tokens(trimmed) > budget and keep > 0:
        keep -= 1
        trimmed = _encoding().decode(tokens[:keep]).rstrip("\ufffd") + ELLIPSIS
    return trimmed if keep > 0 else ""


def count_chat_tokens(messages: list[dict[str, str]]) -> int:
    return REPLY_PRIMING_TOKENS + sum(TOKENS_PER_MESSAGE + count_tokens(m["content"]) for m in messages)
