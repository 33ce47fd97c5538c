"""What every vendor connector shares: one error vocabulary, one retry policy, one HTTP client.

Retrying is only safe when repeating the request cannot do the work twice: reads, idempotent
writes (PUT, PATCH of a field, DELETE), and POSTs that carry an idempotency key. Anything else is
retried only when the request certainly never reached the vendor (no connection, or a 429 that
the vendor refused before doing anything). Errors name the vendor, the operation and the status,
and never include credentials.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx
from dagster import ConfigurableResource
from pydantic import Field, ValidationError

from dispute_platform.resources.providers import ProviderError

log = logging.getLogger(__name__)

T = TypeVar("T")

IDEMPOTENCY_HEADER = "Idempotency-Key"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


# --- errors ------------------------------------------------------------------------------------


class ConnectorError(RuntimeError):
    """A vendor call failed. The message names the vendor, the operation and the HTTP status."""

    def __init__(self, vendor: str, operation: str, detail: str, *, status: int | None = None):
        self.vendor = vendor
        self.operation = operation
        self.status = status
        self.detail = detail
        where = f" with HTTP {status}" if status is not None else ""
        super().__init__(f"{vendor} {operation} failed{where}: {detail}")


class ConnectorConfigError(ConnectorError, ValueError):
    """The connector is configured so that this operation cannot work."""


class ConnectorAuthError(ConnectorError):
    """401/403: the credentials are wrong, expired or lack a permission; a retry will not help."""


class ConnectorNotFound(ConnectorError, LookupError):
    """404, or the vendor has no record under the key asked for."""


class ConnectorRequestError(ConnectorError):
    """The vendor refused the request as invalid (other 4xx); a retry will not help."""


class ConnectorDataError(ConnectorError):
    """The vendor answered, but with data the platform cannot map without guessing."""


class ConnectorUnavailable(ConnectorError, ProviderError):
    """Rate limits, 5xx, timeouts or lost connections that outlasted the retries: try later."""


class InvalidIdentifier(ValueError):
    """An id from dispute data that does not match the vendor's strict pattern."""


@contextmanager
def mapping_errors(vendor: str, operation: str) -> Iterator[None]:
    """Vendor data that does not fit the platform's models is the vendor's data problem, reported
    as such (with the field), not a crash deep inside pydantic."""
    try:
        yield
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ConnectorDataError(vendor, operation, f"unusable value for {where}: {first.get('msg')}") from exc


# --- retry policy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    retry_after_cap_seconds: float = 30.0
    jitter: bool = True

    def backoff(self, attempt: int) -> float:
        """Exponential backoff before retry number `attempt` (1-based), with equal jitter so that
        workers that failed together do not retry together."""
        delay = min(self.backoff_max_seconds, self.backoff_base_seconds * (2 ** (attempt - 1)))
        if self.jitter:
            delay = delay / 2 + random.uniform(0, delay / 2)
        return delay

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The server's Retry-After when it gave one (capped: a vendor asking for an hour must
        not hold a run for an hour), else the backoff."""
        if retry_after is not None:
            return max(0.0, min(retry_after, self.retry_after_cap_seconds))
        return self.backoff(attempt)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Transient(Exception):
    """Raised inside a retried call: this attempt failed in a way another attempt may not."""

    def __init__(self, detail: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.retry_after = retry_after


def retry_call(
    call: Callable[[], T],
    *,
    vendor: str,
    operation: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    gave_up_hint: str = "",
) -> T:
    """Run `call` until it returns, raises something other than `Transient`, or the attempts
    are used; then raise `ConnectorUnavailable` with the last reason."""
    last: Transient | None = None
    attempts = max(1, policy.max_attempts)
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Transient as exc:
            last = exc
            if attempt == attempts:
                break
            wait = policy.delay(attempt, exc.retry_after)
            log.warning(
                "%s %s attempt %d/%d failed (%s); retrying in %.2fs", vendor, operation, attempt, attempts, exc.detail, wait
            )
            sleep(wait)
    assert last is not None
    detail = f"{last.detail}; gave up after {attempts} attempt{'s' if attempts != 1 else ''}"
    raise ConnectorUnavailable(vendor, operation, detail + (f" ({gave_up_hint})" if gave_up_hint else ""), status=last.status)


# --- authentication ------------------------------------------------------------------------------


class Authenticator(Protocol):
    def headers(self) -> dict[str, str]: ...

    def refresh(self) -> bool:
        """Get a new credential after a 401; False when there is no way to."""
        ...


class StaticBearer:
    """A token handed over by configuration: nothing to refresh."""

    def __init__(self, token: str):
        self._token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def refresh(self) -> bool:
        return False


class ClientCredentials:
    """OAuth 2.0 client-credentials grant: the token is cached until shortly before it expires
    and fetched again once after a 401 (a token revoked or expired early)."""

    def __init__(
        self,
        http: VendorHTTP,
        token_path: str,
        client_id: str,
        client_secret: str,
        *,
        default_lifetime_seconds: float = 1800.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._http = http
        self._token_path = token_path
        self._client_id = client_id
        self._client_secret = client_secret
        self._default_lifetime = default_lifetime_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0

    def _fetch(self) -> None:
        reply = self._http.request(
            "oauth token",
            "POST",
            self._token_path,
            data={"grant_type": "client_credentials", "client_id": self._client_id, "client_secret": self._client_secret},
            authenticate=False,
            idempotent=True,  # asking for a token twice does no harm
        )
        body = reply.json()
        token = body.get("access_token")
        if not token:
            raise ConnectorAuthError(
                self._http.vendor, "oauth token", "the token reply has no access_token", status=reply.status_code
            )
        lifetime = float(body.get("expires_in") or self._default_lifetime)
        self._token = token
        # Renew a minute early (or at 90% for short-lived tokens) so no request carries a token
        # that expires on its way.
        self._expires_at = self._clock() + max(1.0, min(lifetime - 60, lifetime * 0.9))

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def refresh(self) -> bool:
        with self._lock:
            self._fetch()
        return True


# --- the HTTP client -----------------------------------------------------------------------------


def error_detail(response: httpx.Response, limit: int = 300) -> str:
    """The vendor's own words for an error, from the shapes Salesforce, Zuora, Stripe and OAuth
    servers use; the raw text (shortened) otherwise."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:limit] or response.reason_phrase
    parts: list[str] = []
    if isinstance(body, list):  # Salesforce: [{"message": ..., "errorCode": ...}]
        for item in body:
            if isinstance(item, dict):
                parts.append(": ".join(str(item[k]) for k in ("errorCode", "message") if item.get(k)))
    elif isinstance(body, dict):
        if isinstance(body.get("error"), dict):  # Stripe
            err = body["error"]
            parts.append(": ".join(str(err[k]) for k in ("type", "code", "message") if err.get(k)))
        elif body.get("error"):  # OAuth
            parts.append(": ".join(str(body[k]) for k in ("error", "error_description") if body.get(k)))
        for key in ("reasons", "Errors"):  # Zuora (REST, and its older CRUD shape)
            for item in body.get(key) or []:
                if isinstance(item, dict):
                    code = item.get("code", item.get("Code"))
                    message = item.get("message", item.get("Message"))
                    parts.append(f"{code}: {message}" if code else str(message))
        if not parts and body.get("message"):
            parts.append(str(body["message"]))
    detail = "; ".join(p for p in parts if p) or response.text.strip() or response.reason_phrase
    return detail[:limit]


class VendorHTTP:
    """An httpx client with the shared retry policy, auth refresh and error mapping."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        timeout_seconds: float,
        policy: RetryPolicy,
        auth: Authenticator | None = None,
        auth_hint: str = "",
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ):
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.auth = auth
        self.auth_hint = auth_hint
        self._sleep = sleep
        # Redirects are not followed: a redirect would carry the bearer token to another host.
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_seconds,
            headers={"Accept": "application/json", **(headers or {})},
            follow_redirects=False,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def same_origin_path(self, url: str) -> str:
        """A path (with query) the vendor handed back for paging, refused if it points at
        another host: following it would send our token there."""
        parts = urlsplit(url)
        base = urlsplit(self.base_url)
        if parts.scheme or parts.netloc:
            if (parts.scheme, parts.netloc) != (base.scheme, base.netloc):
                raise ConnectorDataError(self.vendor, "paging", f"next page points at another host ({parts.netloc})")
        if not parts.path.startswith("/"):
            raise ConnectorDataError(self.vendor, "paging", "next page is not an absolute path")
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticate: bool = True,
        allow_statuses: frozenset[int] = frozenset(),
        check: Callable[[httpx.Response], None] | None = None,
    ) -> httpx.Response:
        """Send one logical request, retried where that is safe. Returns a 2xx response (or one
        whose status is in `allow_statuses`); raises a `ConnectorError` otherwise. `check` looks
        at a 2xx body (vendors that report errors inside a 200) and may raise `Transient` or a
        `ConnectorError` (a `Transient` is retried only when the request is safe to repeat)."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in _SAFE_METHODS or any(k.lower() == IDEMPOTENCY_HEADER.lower() for k in (headers or {}))
        refreshed = False

        def attempt() -> httpx.Response:
            nonlocal refreshed
            sent = dict(headers or {})
            if authenticate and self.auth is not None:
                sent.update(self.auth.headers())
            try:
                response = self._client.request(method, path, params=params, json=json, data=data, headers=sent)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The request never left: always safe to send again.
                raise Transient(f"could not connect ({type(exc).__name__})") from exc
            except httpx.TimeoutException as exc:
                if idempotent:
                    raise Transient(f"timed out ({type(exc).__name__})") from exc
                raise ConnectorUnavailable(
                    self.vendor, operation, f"timed out ({type(exc).__name__}); not retried, the outcome is unknown"
                ) from exc
            except httpx.TransportError as exc:
                if idempotent:
                    raise Transient(f"connection failed ({type(exc).__name__})") from exc
                raise ConnectorUnavailable(
                    self.vendor, operation, f"connection failed ({type(exc).__name__}); not retried, the outcome is unknown"
                ) from exc
            status = response.status_code
            if 200 <= status < 300 or status in allow_statuses:
                if check is not None:
                    try:
                        check(response)
                    except Transient as exc:
                        if not idempotent:
                            raise ConnectorUnavailable(
                                self.vendor, operation, f"{exc.detail}; not retried", status=status
                            ) from exc
                        raise
                return response
            detail = error_detail(response)
            if status == 401 and authenticate and self.auth is not None and not refreshed:
                refreshed = True
                if self.auth.refresh():
                    # A fresh token gets one more go that does not count as a retry.
                    return attempt()
            if status in (401, 403):
                hint = f" ({self.auth_hint})" if self.auth_hint else ""
                raise ConnectorAuthError(self.vendor, operation, detail + hint, status=status)
            if status == 429:
                # A rate-limited request was refused before any work was done.
                raise Transient(
                    f"HTTP 429 {detail}", status=status, retry_after=parse_retry_after(response.headers.get("Retry-After"))
                )
            if status >= 500 or status in (408, 409):
                if idempotent:
                    raise Transient(
                        f"HTTP {status} {detail}",
                        status=status,
                        retry_after=parse_retry_after(response.headers.get("Retry-After")),
                    )
                raise ConnectorUnavailable(
                    self.vendor, operation, f"{detail}; not retried, the request is not idempotent", status=status
                )
            if status == 404:
                raise ConnectorNotFound(self.vendor, operation, detail, status=status)
            raise ConnectorRequestError(self.vendor, operation, detail, status=status)

        return retry_call(attempt, vendor=self.vendor, operation=operation, policy=self.policy, sleep=self._sleep)


class HTTPConnectorResource(ConfigurableResource):
    """Timeouts and retries every connector resource takes from configuration."""

    timeout_seconds: float = Field(default=20.0, gt=0, description="Per-request timeout.")
    max_attempts: int = Field(default=4, ge=1, le=10, description="Attempts per request where retrying is safe.")
    backoff_base_seconds: float = Field(default=0.5, ge=0, description="First retry wait; doubles per retry.")
    backoff_max_seconds: float = Field(default=8.0, ge=0, description="Longest wait between retries.")
    retry_after_cap_seconds: float = Field(default=30.0, ge=0, description="Longest Retry-After honoured.")

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base_seconds=self.backoff_base_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
            retry_after_cap_seconds=self.retry_after_cap_seconds,
        )
