"""Nothing secret reaches a log: `RedactingFilter` replaces the values of secret environment
variables (API keys, passwords, tokens, the password of every database URL), bearer tokens, key
and URL-credential patterns and values registered at run time (`register_secret`), then masks card
numbers, e-mail addresses and phone numbers with `mask_pii`. It runs on every string of the
record, the traceback included, before the line is written."""

from __future__ import annotations

import logging
import os
import re
import threading
import traceback
from typing import Any
from urllib.parse import urlsplit

from dispute_platform.domain.masking import mask_pii

REDACTED = "[REDACTED]"

# Named explicitly (the platform's own secrets) ...
SECRET_ENV = (
    "OPENAI_API_KEY", "GMAIL_APP_PASSWORD", "STRIPE_SECRET_KEY", "PAYMENT_SECRET_KEY", "SALESFORCE_ACCESS_TOKEN",
    "CRM_ACCESS_TOKEN", "SALESFORCE_CLIENT_SECRET", "ZUORA_CLIENT_SECRET", "ZUORA_ACCESS_TOKEN", "BILLING_ACCESS_TOKEN",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "REVIEWER_TOKEN", "DISPUTE_PLATFORM_REVIEWER_TOKEN",
)  # fmt: skip
# ... and by the shape of their names (anyone's): FOO_API_KEY, BAR_PASSWORD, X_TOKEN ...
_SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL)", re.IGNORECASE)
_NOT_SECRET_VALUES = {"", "local", "test", "true", "false", "none", "null", "0", "1"}
_MIN_SECRET_LEN = 6
_REGISTERED: set[str] = set()

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # user:password@ in any URL (database, broker, proxy)
    (re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^\s:/@]+:)[^\s@/]+@", re.IGNORECASE), r"\g<head>" + REDACTED + "@"),
    (re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE), r"\1 " + REDACTED),
    (re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"), REDACTED),  # OpenAI keys
    (re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}"), REDACTED),  # Stripe secret/restricted keys
    (re.compile(r"\bwhsec_[A-Za-z0-9]{8,}"), REDACTED),  # Stripe webhook secrets
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),  # AWS access key ids
    (
        re.compile(
            r"(?P<key>\b(?:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token|token|authorization)"
            r"[\"']?\s*[=:]\s*[\"']?)(?!\[REDACTED\])[^\s\"',;}&]+",
            re.IGNORECASE,
        ),
        r"\g<key>" + REDACTED,
    ),
]


_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


def register_secret(value: str | None) -> None:
    """A secret known only at run time (a reviewer token just created, say): never log it."""
    if value and len(value) >= _MIN_SECRET_LEN:
        _REGISTERED.add(value)


def _url_password(value: str) -> str | None:
    if "://" not in value:
        return None
    try:
        return urlsplit(value).password
    except ValueError:
        return None


def secret_values(environ: dict[str, str] | None = None) -> set[str]:
    """Every value in the environment that must never appear in a log."""
    environ = dict(os.environ if environ is None else environ)
    found = set(_REGISTERED)
    for name, value in environ.items():
        if not value or value.lower() in _NOT_SECRET_VALUES:
            continue
        if name.upper() in SECRET_ENV or _SECRET_NAME.search(name):
            if len(value) >= _MIN_SECRET_LEN:
                found.add(value)
        password = _url_password(value)
        if password and len(password) >= 3:
            found.add(password)
    return found


_compiled: tuple[frozenset[str], re.Pattern[str] | None] = (frozenset(), None)
_compiled_lock = threading.Lock()


def secrets_pattern() -> re.Pattern[str] | None:
    global _compiled
    values = frozenset(secret_values())
    with _compiled_lock:
        if values != _compiled[0]:
            # Longest first, so a secret that contains another is replaced whole.
            alternatives = sorted(values, key=len, reverse=True)
            _compiled = (values, re.compile("|".join(re.escape(v) for v in alternatives)) if alternatives else None)
        return _compiled[1]


def redact(text: str, pattern: re.Pattern[str] | None | bool = True) -> str:
    """Secrets out, then card numbers, e-mail addresses and phone numbers masked. `pattern` is
    the compiled secrets pattern when the caller already has it (one environment scan a line)."""
    if not text:
        return text
    text = text.replace("\x00", "\\u0000")  # NUL marks held UUIDs below
    secrets = secrets_pattern() if pattern is True else pattern
    if secrets is not None and secrets is not False:
        text = secrets.sub(REDACTED, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    # Run ids and other UUIDs are not phone or card numbers: keep them out of the PII masking.
    uuids: list[str] = []

    def hold(match: re.Match[str]) -> str:
        uuids.append(match.group())
        return f"\x00{len(uuids) - 1}\x00"

    text = mask_pii(_UUID.sub(hold, text))
    return re.sub(r"\x00(\d+)\x00", lambda m: uuids[int(m.group(1))], text) if uuids else text


def redact_value(value: Any, pattern: re.Pattern[str] | None | bool = True) -> Any:
    """Plain strings, dicts, lists and tuples only: other objects (Dagster's events are tuples)
    are left as they are, and the formatter writes only what it picked from them."""
    if isinstance(value, str):
        return redact(value, pattern)
    if type(value) is dict:
        return {k: redact_value(v, pattern) for k, v in value.items()}
    if type(value) in (list, tuple):
        return [redact_value(v, pattern) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Rewrites a record so that no secret or unmasked PII is left in it: the message (with its
    arguments merged in), the traceback, the stack and every extra string attribute."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_dp_redacted", False):
            return True
        try:
            self._redact(record)
        except Exception:  # noqa: BLE001 - never fail the caller; never write what was not redacted
            record.msg, record.args, record.exc_info, record.exc_text = "[log record could not be redacted]", (), None, None
            record._dp_redacted = True
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        secrets = secrets_pattern()
        record.msg, record.args = redact(message, secrets), ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)), secrets)
            record.exc_info = None  # the text above replaces it: the raw exception may hold secrets
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        for name, value in list(record.__dict__.items()):
            if name in _STANDARD_ATTRS or name.startswith(("_", "dagster")):
                continue  # Dagster's own attributes stay intact: other handlers read them
            if isinstance(value, str) or type(value) in (dict, list, tuple):
                setattr(record, name, redact_value(value, secrets))
        record._dp_redacted = True


_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "dagster_meta"}
