"""The shared retry policy and error vocabulary (no vendor)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from dispute_platform.resources.connectors.http import (
    ConnectorUnavailable,
    RetryPolicy,
    Transient,
    parse_retry_after,
    retry_call,
)
from dispute_platform.resources.providers import ProviderError


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_delay_honours_retry_after_up_to_the_cap_else_backs_off_exponentially() -> None:
    policy = RetryPolicy(backoff_base_seconds=1, backoff_max_seconds=5, retry_after_cap_seconds=10, jitter=False)
    assert policy.delay(1, 3.0) == 3.0
    assert policy.delay(1, 3600.0) == 10.0
    assert [policy.delay(n, None) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    jittered = RetryPolicy(backoff_base_seconds=1, backoff_max_seconds=8)
    assert all(2 <= jittered.backoff(3) <= 4 for _ in range(50))


def test_retry_call_sleeps_between_attempts_then_gives_up_with_the_last_reason() -> None:
    waits: list[float] = []
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        raise Transient(f"HTTP 503 attempt {calls}", status=503, retry_after=0.5)

    policy = RetryPolicy(max_attempts=3, retry_after_cap_seconds=2)
    with pytest.raises(ConnectorUnavailable) as caught:
        retry_call(flaky, vendor="Acme", operation="fetch", policy=policy, sleep=waits.append)
    assert isinstance(caught.value, ProviderError)
    assert str(caught.value) == "Acme fetch failed with HTTP 503: HTTP 503 attempt 3; gave up after 3 attempts"
    assert waits == [0.5, 0.5] and calls == 3


def test_retry_call_does_not_retry_other_errors() -> None:
    calls = 0

    def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad request")

    with pytest.raises(ValueError):
        retry_call(broken, vendor="Acme", operation="fetch", policy=RetryPolicy(), sleep=lambda s: None)
    assert calls == 1
