"""Stripe as the payment provider, through the official `stripe` package: a customer's charges
(with their payment intents' metadata), refunds and disputes, and refunds created with the
caller's idempotency key.

Stripe's own retries are switched off so that the shared retry policy (connectors/http.py) decides:
rate limits, 5xx and lost connections are retried with backoff, then reported as
`ConnectorUnavailable` (a `ProviderError`); Stripe's card and invalid-request refusals become
`RefundRefused` with Stripe's message. A refund is reported only once Stripe has returned it in a
state that moves money.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal, TypeVar

import stripe
from pydantic import Field

from dispute_platform.domain.models import Charge, PaymentRecord, PriorDispute, Refund
from dispute_platform.resources.connectors.http import (
    ConnectorAuthError,
    ConnectorConfigError,
    ConnectorDataError,
    ConnectorError,
    ConnectorNotFound,
    ConnectorRequestError,
    HTTPConnectorResource,
    Transient,
    mapping_errors,
    parse_retry_after,
    retry_call,
)
from dispute_platform.resources.providers import MoneyReceipt, RefundRefused

VENDOR = "Stripe"
T = TypeVar("T")

_CUSTOMER_ID = re.compile(r"cus_[A-Za-z0-9]{1,250}")
_CHARGE_ID = re.compile(r"(?:ch|py)_[A-Za-z0-9]{1,250}")
_CUSTOMER_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_METADATA_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}")

# https://docs.stripe.com/currencies: amounts are in the currency's smallest unit.
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())

_CHARGE_KINDS = {"subscription", "renewal", "late_fee", "one_time", "usage"}
_FULFILLMENT = {"not_applicable", "pending", "shipped", "delivered", "not_delivered"}
_DISPUTE_STATUS = {"won": "won", "lost": "lost", "warning_closed": "withdrawn", "prevented": "withdrawn"}
_REFUND_MOVES_MONEY = {"pending", "succeeded", "requires_action"}


def currency_exponent(currency: str) -> int:
    currency = currency.upper()
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def to_minor_units(amount: Decimal, currency: str) -> int:
    scaled = amount * (Decimal(10) ** currency_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise RefundRefused(f"{amount} {currency} is not a whole number of the currency's smallest unit")
    return int(scaled)


def from_minor_units(value: int | None, currency: str) -> Decimal:
    exponent = currency_exponent(currency)
    return (Decimal(int(value or 0)) / (Decimal(10) ** exponent)).quantize(Decimal("0.01"))


def search_literal(value: str) -> str:
    """A quoted string for Stripe's search query language (quotes and backslashes escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ts(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if key.lower() == name.lower():
            return value
    return None


def _message(exc: stripe.StripeError) -> str:
    error = getattr(exc, "error", None)
    message = getattr(error, "message", None) or exc.user_message or str(exc)
    code = exc.code or getattr(error, "type", None)
    return f"{code}: {message}" if code else str(message)


class StripePayments(HTTPConnectorResource):
    """Charges, refunds and disputes from Stripe; refunds made with the caller's idempotency key."""

    secret_key: str = Field(description="Secret or restricted key, sk_... or rk_... (an EnvVar).")
    api_base: str | None = Field(default=None, description="API base URL; unset: https://api.stripe.com.")
    stripe_version: str | None = Field(default=None, description="Stripe-Version; unset: the version the stripe package pins.")
    customer_lookup: Literal["metadata", "id"] = Field(
        default="metadata",
        description="metadata: the platform's customer id is in the Stripe customer's metadata; id: it is the cus_... id.",
    )
    customer_metadata_key: str = Field(default="customer_id", description="Metadata key that holds the platform's customer id.")
    max_charges: int = Field(default=1000, ge=1, description="Most charges read per customer (newest first).")

    @cached_property
    def _client(self) -> stripe.StripeClient:
        if not self.secret_key.startswith(("sk_", "rk_")):
            raise ConnectorConfigError(VENDOR, "configuration", "the key must be a secret (sk_) or restricted (rk_) key")
        http_client = stripe.HTTPXClient(timeout=self.timeout_seconds, allow_sync_methods=True)
        kwargs: dict[str, Any] = {"max_network_retries": 0, "http_client": http_client}
        if self.api_base:
            kwargs["base_addresses"] = {"api": self.api_base}
        if self.stripe_version:
            kwargs["stripe_version"] = self.stripe_version
        return stripe.StripeClient(self.secret_key, **kwargs)

    # --- calls -----------------------------------------------------------------------------

    def _call(self, operation: str, call: Callable[[], T], *, idempotent: bool = True) -> T:
        """One Stripe call under the shared retry policy. Reads are always safe to repeat;
        writes are only made with an idempotency key, so they are too."""

        def attempt() -> T:
            try:
                return call()
            except stripe.RateLimitError as exc:
                raise Transient(
                    f"HTTP 429 {_message(exc)}", status=429, retry_after=parse_retry_after(_header(exc.headers, "Retry-After"))
                ) from exc
            except stripe.APIConnectionError as exc:
                cause = type(exc.__cause__).__name__ if exc.__cause__ else "no response"
                if idempotent:
                    raise Transient(f"connection failed or timed out ({cause})") from exc
                raise ConnectorError(
                    VENDOR, operation, f"connection failed or timed out ({cause}); the outcome is unknown"
                ) from exc
            except stripe.APIError as exc:
                # 5xx (and 409 conflicts): Stripe says in a header whether a retry can help.
                if _header(exc.headers, "Stripe-Should-Retry") == "false" or not idempotent:
                    raise ConnectorError(VENDOR, operation, _message(exc), status=exc.http_status) from exc
                raise Transient(
                    f"HTTP {exc.http_status} {_message(exc)}",
                    status=exc.http_status,
                    retry_after=parse_retry_after(_header(exc.headers, "Retry-After")),
                ) from exc
            except (stripe.AuthenticationError, stripe.PermissionError) as exc:
                raise ConnectorAuthError(
                    VENDOR,
                    operation,
                    f"{_message(exc)} (check STRIPE_SECRET_KEY and the restricted key's permissions)",
                    status=exc.http_status,
                ) from exc

        return retry_call(attempt, vendor=VENDOR, operation=operation, policy=self.retry_policy())

    def _list(self, operation: str, fetch: Callable[[dict[str, Any]], Any], params: dict[str, Any], limit: int) -> Iterator[Any]:
        """Every object of a list endpoint, one page per retried call."""
        seen = 0
        page_params = {**params, "limit": min(100, limit)}
        while True:
            page = self._call(operation, lambda p=dict(page_params): fetch(p))
            data = [item.to_dict() for item in page.data]
            for item in data:
                yield item
                seen += 1
                if seen >= limit:
                    return
            if not page.has_more or not data:
                return
            page_params["starting_after"] = data[-1]["id"]

    # --- PaymentsProvider ------------------------------------------------------------------

    def _customer_ids(self, customer_id: str) -> list[str]:
        if self.customer_lookup == "id":
            if not isinstance(customer_id, str) or _CUSTOMER_ID.fullmatch(customer_id) is None:
                raise ConnectorNotFound(VENDOR, "fetch_payments", f"{customer_id!r} is not a Stripe customer id (cus_...)")
            return [customer_id]
        if _METADATA_KEY.fullmatch(self.customer_metadata_key) is None:
            raise ConnectorConfigError(VENDOR, "configuration", f"{self.customer_metadata_key!r} is not a metadata key")
        if not isinstance(customer_id, str) or _CUSTOMER_KEY.fullmatch(customer_id) is None:
            raise ConnectorNotFound(VENDOR, "fetch_payments", f"{customer_id!r} is not a valid customer id")
        query = f"metadata[{search_literal(self.customer_metadata_key)}]:{search_literal(customer_id)}"
        ids: list[str] = []
        params: dict[str, Any] = {"query": query, "limit": 100}
        while True:
            page = self._call("fetch_payments customers", lambda p=dict(params): self._client.v1.customers.search(params=p))
            ids += [c["id"] for c in page.data]
            if not page.has_more or not page.next_page:
                break
            params["page"] = page.next_page
        if not ids:
            raise ConnectorNotFound(
                VENDOR, "fetch_payments", f"no Stripe customer has metadata {self.customer_metadata_key}={customer_id}"
            )
        return ids

    def fetch_payments(self, customer_id: str) -> PaymentRecord:
        with mapping_errors(VENDOR, "fetch_payments"):
            return self._fetch_payments(customer_id)

    def _fetch_payments(self, customer_id: str) -> PaymentRecord:
        operation = "fetch_payments"
        charges: list[Charge] = []
        refunds: list[Refund] = []
        disputes: list[PriorDispute] = []
        try:
            for stripe_customer in self._customer_ids(customer_id):
                intents = {
                    pi["id"]: pi
                    for pi in self._list(
                        f"{operation} payment intents",
                        lambda p: self._client.v1.payment_intents.list(params=p),
                        {"customer": stripe_customer},
                        self.max_charges,
                    )
                }
                for raw in self._list(
                    f"{operation} charges",
                    lambda p: self._client.v1.charges.list(params=p),
                    {"customer": stripe_customer, "expand": ["data.refunds"]},
                    self.max_charges,
                ):
                    intent = intents.get(raw.get("payment_intent") or "")
                    charges.append(self._charge(raw, customer_id, intent))
                    refunds += self._refunds(raw)
                    if raw.get("disputed"):
                        disputes += self._disputes(raw)
        except stripe.InvalidRequestError as exc:
            raise self._read_error(operation, exc) from exc
        return PaymentRecord(charges=charges, refunds=refunds, disputes=disputes)

    @staticmethod
    def _read_error(operation: str, exc: stripe.StripeError) -> ConnectorError:
        if exc.http_status == 404:
            return ConnectorNotFound(VENDOR, operation, _message(exc), status=404)
        return ConnectorRequestError(VENDOR, operation, _message(exc), status=exc.http_status)

    def _charge(self, raw: Any, customer_id: str, intent: Any | None) -> Charge:
        currency = str(raw.get("currency") or "").upper()
        if not currency:
            raise ConnectorDataError(VENDOR, "fetch_payments", f"charge {raw.get('id')} has no currency")
        metadata = {**dict((intent.get("metadata") if intent else None) or {}), **dict(raw.get("metadata") or {})}
        kind = metadata.get("kind")
        if kind not in _CHARGE_KINDS:
            kind = "subscription" if (raw.get("invoice") or metadata.get("invoice_id")) else "one_time"
        fulfillment = metadata.get("fulfillment_status")
        details = raw.get("payment_method_details") or {}
        card = details.get("card") if details else None
        status = raw.get("status")
        return Charge(
            charge_id=raw["id"],
            customer_id=customer_id,
            amount=from_minor_units(raw.get("amount"), currency),
            currency=currency,
            created_at=_ts(raw["created"]),
            status=status if status in ("succeeded", "failed", "pending") else "pending",
            description=raw.get("description") or (intent.get("description") if intent else None) or "",
            kind=kind,
            invoice_id=metadata.get("invoice_id") or (raw.get("invoice") if isinstance(raw.get("invoice"), str) else None),
            period_start=_date(metadata.get("period_start")),
            period_end=_date(metadata.get("period_end")),
            card_last4=card.get("last4") if card else None,
            amount_refunded=from_minor_units(raw.get("amount_refunded"), currency),
            fulfillment_status=fulfillment if fulfillment in _FULFILLMENT else "not_applicable",
        )

    def _refunds(self, raw: Any) -> list[Refund]:
        currency = str(raw.get("currency") or "").upper()
        listed = raw.get("refunds")
        items: list[Any] = list(listed.get("data") or []) if isinstance(listed, dict) else []
        if not isinstance(listed, dict) or listed.get("has_more"):
            items = list(
                self._list(
                    "fetch_payments refunds", lambda p: self._client.v1.refunds.list(params=p), {"charge": raw["id"]}, 10_000
                )
            )
        refunds = []
        for refund in items:
            if refund.get("status") not in _REFUND_MOVES_MONEY:
                continue  # failed and canceled refunds returned nothing
            metadata = dict(refund.get("metadata") or {})
            refunds.append(
                Refund(
                    refund_id=refund["id"],
                    charge_id=raw["id"],
                    amount=from_minor_units(refund.get("amount"), currency),
                    created_at=_ts(refund["created"]),
                    reason=metadata.get("reason") or refund.get("reason") or "",
                    idempotency_key=metadata.get("idempotency_key"),
                )
            )
        return refunds

    def _disputes(self, raw: Any) -> list[PriorDispute]:
        currency = str(raw.get("currency") or "").upper()
        found = self._list(
            "fetch_payments disputes", lambda p: self._client.v1.disputes.list(params=p), {"charge": raw["id"]}, 1000
        )
        return [
            PriorDispute(
                dispute_id=d["id"],
                charge_id=raw["id"],
                amount=from_minor_units(d.get("amount"), str(d.get("currency") or currency).upper()),
                created_at=_ts(d["created"]),
                reason=d.get("reason") or "",
                status=_DISPUTE_STATUS.get(d.get("status") or "", "open"),
            )
            for d in found
        ]

    def find_refunds(self, charge_id: str, case_id: str) -> list[MoneyReceipt]:
        """Refunds on the charge whose metadata carries our case id (made with any key, at any time:
        Stripe forgets idempotency keys after 24 hours, metadata stays)."""
        operation = "find_refunds"
        if not isinstance(charge_id, str) or _CHARGE_ID.fullmatch(charge_id) is None:
            raise RefundRefused(f"{charge_id!r} is not a Stripe charge id")
        try:
            listed = list(self._list(operation, lambda p: self._client.v1.refunds.list(params=p), {"charge": charge_id}, 10_000))
        except stripe.InvalidRequestError as exc:
            raise self._read_error(operation, exc) from exc
        found = []
        for refund in listed:
            metadata = dict(refund.get("metadata") or {})
            if metadata.get("case_id") != case_id or refund.get("status") not in _REFUND_MOVES_MONEY:
                continue
            currency = str(refund.get("currency") or "").upper()
            found.append(
                MoneyReceipt(
                    kind="refund",
                    reference=refund["id"],
                    amount=from_minor_units(refund.get("amount"), currency),
                    currency=currency,
                    idempotency_key=metadata.get("idempotency_key") or "",
                    replayed=True,
                )
            )
        return found

    def refund(
        self,
        charge_id: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        reason: str,
        *,
        case_id: str | None = None,
    ) -> MoneyReceipt:
        operation = "refund"
        if not isinstance(charge_id, str) or _CHARGE_ID.fullmatch(charge_id) is None:
            raise RefundRefused(f"{charge_id!r} is not a Stripe charge id")
        if amount <= 0:
            raise RefundRefused("refund amount must be positive")
        if not idempotency_key or len(idempotency_key) > 255:
            raise RefundRefused("a refund needs an idempotency key of 1 to 255 characters")
        try:
            charge = self._call(f"{operation} charge lookup", lambda: self._client.v1.charges.retrieve(charge_id)).to_dict()
        except stripe.InvalidRequestError as exc:
            raise RefundRefused(f"Stripe cannot refund {charge_id}: {_message(exc)}") from exc
        charge_currency = str(charge.get("currency") or "").upper()
        if currency.upper() != charge_currency:
            # Stripe refunds in the charge's currency: an amount in another would be misread.
            raise RefundRefused(f"refund in {currency} on a {charge_currency} charge")
        minor = to_minor_units(amount, charge_currency)
        metadata = {"idempotency_key": idempotency_key[:500], "reason": reason[:500], "source": "dispute_platform"}
        if case_id:
            metadata["case_id"] = case_id[:500]
        params = {
            "charge": charge_id,
            "amount": minor,
            "reason": "duplicate" if "duplicate" in reason.lower() else "requested_by_customer",
            "metadata": metadata,
        }
        try:
            created = self._call(
                operation,
                lambda: self._client.v1.refunds.create(params=params, options={"idempotency_key": idempotency_key}),
            )
        except (stripe.CardError, stripe.InvalidRequestError, stripe.IdempotencyError) as exc:
            raise RefundRefused(f"Stripe refused the refund on {charge_id}: {_message(exc)}") from exc
        except stripe.StripeError as exc:
            raise ConnectorError(
                VENDOR, operation, f"{_message(exc)}; the refund is not confirmed", status=exc.http_status
            ) from exc
        refund = created.to_dict()
        status = refund.get("status")
        if status not in _REFUND_MOVES_MONEY:
            why = refund.get("failure_reason") or "no reason given"
            raise RefundRefused(f"Stripe refund {refund.get('id')} on {charge_id} is {status} ({why})")
        if refund.get("amount") != minor or refund.get("charge") not in (charge_id, None):
            raise ConnectorDataError(
                VENDOR,
                operation,
                f"Stripe returned refund {refund.get('id')} for {refund.get('amount')} on {refund.get('charge')}, "
                f"not {minor} on {charge_id}",
            )
        replayed = _header(getattr(created.last_response, "headers", None), "Idempotent-Replayed") == "true"
        return MoneyReceipt(
            kind="refund",
            reference=refund["id"],
            amount=from_minor_units(refund["amount"], charge_currency),
            currency=charge_currency,
            idempotency_key=idempotency_key,
            replayed=replayed,
        )
