"""Instructions hidden in dispute text are flagged for the reviewer.

Detection is a tripwire, not the defence: the guardrails bound every amount whatever the text
says. A flagged dispute still gets a proposal, with `injection_suspected` on it.
"""

from __future__ import annotations

import re

_PATTERNS: dict[str, re.Pattern[str]] = {
    "override_instructions": re.compile(
        r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(previous|prior|above|earlier|all|any|your|system)\b"
        r"[^.\n]{0,20}\b(instructions?|rules?|prompts?|polic(y|ies)|guidelines?)\b",
        re.IGNORECASE,
    ),
    "role_play": re.compile(
        r"\b(you are now|act as|pretend to be|from now on you|developer mode|jailbreak|DAN mode)\b", re.IGNORECASE
    ),
    "prompt_markup": re.compile(
        r"(<\s*/?\s*(system|assistant|user|instructions?)\s*>|^\s*(system|assistant)\s*:|\[/?INST\]|#{2,}\s*(system|instruction))",
        re.IGNORECASE | re.MULTILINE,
    ),
    "prompt_exfiltration": re.compile(
        r"\b(reveal|print|show|repeat)\b[^.\n]{0,30}\b(system prompt|instructions|hidden prompt)\b", re.IGNORECASE
    ),
    "payout_command": re.compile(
        r"\b(refund|credit|pay|approve|transfer|issue)\b[^.\n]{0,25}\$?\s?\d[\d,]{3,}(\.\d+)?\b[^.\n]{0,30}"
        r"\b(immediately|now|automatically|without review|no questions)\b",
        re.IGNORECASE,
    ),
    "output_forcing": re.compile(
        r"(\"action\"\s*:\s*\"|\baction\s*=\s*(full_refund|credit)|respond (only )?with json|set (the )?amount to)",
        re.IGNORECASE,
    ),
}


def detect_injection(text: str) -> list[str]:
    """Names of the injection patterns found in `text`, in a stable order."""
    return [name for name, pattern in _PATTERNS.items() if pattern.search(text)]
