"""Zuora as the billing system: an account's subscription and invoices over the v1 REST API, and
credits issued as credit memos.

The platform's customer id is the Zuora account key (account number, or account id): it is
checked against a strict pattern and only ever travels in a URL path segment (percent-encoded)
or a JSON body, never inside a query language. A credit memo is created with an
`Idempotency-Key` header, so a retried request returns the first result instead of crediting twice.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import Field

from dispute_platform.domain.models import (
    BillingRecord,
    Invoice,
    InvoiceLine,
    Plan,
    Subscription,
)
from dispute_platform.resources.connectors.http import (
    IDEMPOTENCY_HEADER,
    Authenticator,
    ClientCredentials,
    ConnectorAuthError,
    ConnectorConfigError,
    ConnectorDataError,
    ConnectorError,
    ConnectorNotFound,
    ConnectorRequestError,
    HTTPConnectorResource,
    StaticBearer,
    Transient,
    VendorHTTP,
    mapping_errors,
)
from dispute_platform.resources.providers import MoneyReceipt, RefundRefused

VENDOR = "Zuora"

ACCOUNT_KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CHARGE_ID = re.compile(r"[A-Za-z0-9]{32}")
PAGE_SIZE = 40  # Zuora's largest page for these list operations

# The last two digits of a Zuora error code name its category.
_AUTH_CATEGORIES = {"10", "11"}
_NOT_FOUND_CATEGORIES = {"40"}
_TRANSIENT_CATEGORIES = {"50", "60", "61", "70", "99"}

_SUBSCRIPTION_STATUS = {"Active": "active", "Cancelled": "cancelled", "Expired": "cancelled", "Suspended": "past_due"}
_BILLING_PERIOD = {"Month": ("monthly", 1), "Annual": ("annual", 12)}


def _reasons(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(r.get("code", "")), str(r.get("message", ""))) for r in body.get("reasons") or [] if isinstance(r, dict)]


def zuora_check(operation: str, *, not_found: str | None = None):
    """A response check for Zuora's `success: false` inside an HTTP 200."""

    def check(response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError as exc:
            raise ConnectorDataError(VENDOR, operation, "the reply is not JSON", status=response.status_code) from exc
        if not isinstance(body, dict) or body.get("success", True) is not False:
            return
        reasons = _reasons(body)
        detail = "; ".join(f"{code}: {message}" for code, message in reasons) or "success=false without reasons"
        categories = {code[-2:] for code, _ in reasons}
        if categories & _TRANSIENT_CATEGORIES:
            raise Transient(f"success=false ({detail})", status=response.status_code)
        if categories & _AUTH_CATEGORIES:
            raise ConnectorAuthError(VENDOR, operation, detail + " (check the API user's role)", status=response.status_code)
        if categories & _NOT_FOUND_CATEGORIES:
            raise ConnectorNotFound(VENDOR, operation, not_found or detail, status=response.status_code)
        raise ConnectorRequestError(VENDOR, operation, detail, status=response.status_code)

    return check


def _decimal(value: Any, what: str) -> Decimal:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError) as exc:
        raise ConnectorDataError(VENDOR, "fetch_billing", f"{what} is not a number: {value!r}") from exc


def _date(value: Any) -> date | None:
    if not value:
        return None
    return date.fromisoformat(str(value)[:10])


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class ZuoraBilling(HTTPConnectorResource):
    """Subscriptions, invoices and credit memos from Zuora. Authenticates with OAuth client
    credentials (preferred: the token is cached and renewed here) or a given bearer token."""

    base_url: str = Field(
        description="REST endpoint of the tenant, e.g. https://rest.zuora.com or https://rest.apisandbox.zuora.com."
    )
    client_id: str | None = Field(default=None, description="OAuth client id.")
    client_secret: str | None = Field(default=None, description="OAuth client secret (an EnvVar).")
    access_token: str | None = Field(default=None, description="A bearer token instead of client credentials (an EnvVar).")
    zuora_version: str | None = Field(
        default=None, description="Zuora-Version header (minor API version); unset: the tenant default."
    )
    credit_charge_id: str | None = Field(
        default=None, description="Product rate plan charge the credit memos are created from (required to issue credits)."
    )
    credit_reason_code: str | None = Field(default=None, description="Reason code on credit memos; unset: the tenant default.")
    auto_post_credits: bool = Field(default=True, description="Post credit memos on creation, so they apply to the balance.")
    max_invoices: int = Field(default=400, ge=1, description="Most invoices read per account (newest pages first).")
    late_fee_charge_names: list[str] = Field(
        default_factory=lambda: ["late fee"], description="Invoice items whose charge name contains one of these are late fees."
    )

    @cached_property
    def _http(self) -> VendorHTTP:
        headers = {"Zuora-Version": self.zuora_version} if self.zuora_version else None
        http = VendorHTTP(
            VENDOR,
            self.base_url,
            timeout_seconds=self.timeout_seconds,
            policy=self.retry_policy(),
            headers=headers,
            auth_hint="check ZUORA_CLIENT_ID/ZUORA_CLIENT_SECRET and the API user's role",
        )
        auth: Authenticator
        if self.client_id and self.client_secret:
            auth = ClientCredentials(http, "/oauth/token", self.client_id, self.client_secret, default_lifetime_seconds=3600)
        elif self.access_token:
            auth = StaticBearer(self.access_token)
        else:
            raise ConnectorConfigError(VENDOR, "configuration", "needs a client id and secret, or an access token")
        http.auth = auth
        return http

    @staticmethod
    def account_key(customer_id: str) -> str:
        if not isinstance(customer_id, str) or ACCOUNT_KEY_PATTERN.fullmatch(customer_id) is None:
            raise ConnectorNotFound(VENDOR, "account lookup", f"{customer_id!r} is not a valid Zuora account key")
        return quote(customer_id, safe="")

    def _get(
        self, operation: str, path: str, *, params: dict[str, Any] | None = None, not_found: str | None = None
    ) -> dict[str, Any]:
        try:
            return self._http.request(
                operation, "GET", path, params=params, check=zuora_check(operation, not_found=not_found)
            ).json()
        except ConnectorNotFound as exc:
            if not_found and exc.detail != not_found:
                raise ConnectorNotFound(VENDOR, operation, f"{not_found} ({exc.detail})", status=exc.status) from exc
            raise

    def _pages(self, operation: str, path: str, key: str, *, limit: int, not_found: str) -> list[dict[str, Any]]:
        body = self._get(operation, path, params={"page": 1, "pageSize": PAGE_SIZE}, not_found=not_found)
        items = list(body.get(key) or [])
        while body.get("nextPage") and len(items) < limit:
            body = self._get(operation, self._http.same_origin_path(body["nextPage"]), not_found=not_found)
            items += body.get(key) or []
        return items[:limit]

    def _account(self, customer_id: str, operation: str) -> dict[str, Any]:
        body = self._get(
            operation, f"/v1/accounts/{self.account_key(customer_id)}", not_found=f"Zuora has no account {customer_id}"
        )
        basic = body.get("basicInfo") or {}
        if not basic.get("id"):
            raise ConnectorDataError(VENDOR, operation, f"account {customer_id} came back without an id")
        return body

    @staticmethod
    def _currency(account: dict[str, Any]) -> str:
        currency = (account.get("billingAndPayment") or {}).get("currency") or (account.get("basicInfo") or {}).get("currency")
        if not currency:
            raise ConnectorDataError(VENDOR, "fetch_billing", "the account has no currency")
        return str(currency).upper()

    # --- BillingProvider -------------------------------------------------------------------

    def fetch_billing(self, customer_id: str) -> BillingRecord:
        with mapping_errors(VENDOR, "fetch_billing"):
            return self._fetch_billing(customer_id)

    def _fetch_billing(self, customer_id: str) -> BillingRecord:
        account = self._account(customer_id, "fetch_billing")
        currency = self._currency(account)
        key = self.account_key(customer_id)
        missing = f"Zuora has no account {customer_id}"
        subscriptions = self._pages(
            "fetch_billing subscriptions", f"/v1/subscriptions/accounts/{key}", "subscriptions", limit=1000, not_found=missing
        )
        invoices = self._pages(
            "fetch_billing invoices",
            f"/v1/transactions/invoices/accounts/{key}",
            "invoices",
            limit=self.max_invoices,
            not_found=missing,
        )
        mapped = [s for s in (self._subscription(raw, customer_id, currency) for raw in subscriptions) if s is not None]
        # The subscription that matters is an active one; otherwise the latest that ended.
        mapped.sort(key=lambda s: (s.status == "active", s.current_period_start), reverse=True)
        return BillingRecord(
            subscription=mapped[0] if mapped else None,
            invoices=[i for i in (self._invoice(raw, customer_id, currency) for raw in invoices) if i is not None],
        )

    def _subscription(self, raw: dict[str, Any], customer_id: str, currency: str) -> Subscription | None:
        status = _SUBSCRIPTION_STATUS.get(raw.get("status", ""))
        if status is None:
            return None  # drafts and pending subscriptions bill nothing yet
        number = raw.get("subscriptionNumber") or raw.get("id")
        recurring: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for rate_plan in raw.get("ratePlans") or []:
            if rate_plan.get("lastChangeType") == "Remove":
                continue
            for charge in rate_plan.get("ratePlanCharges") or []:
                if charge.get("type") == "Recurring" and not str(charge.get("model", "")).startswith("Discount"):
                    recurring.append((rate_plan, charge))
        if not recurring:
            return None
        main_plan, main_charge = max(recurring, key=lambda pc: self._charge_amount(pc[1], number))
        period = _BILLING_PERIOD.get(main_charge.get("billingPeriod", ""))
        if period is None:
            raise ConnectorDataError(
                VENDOR,
                "fetch_billing",
                f"subscription {number} bills {main_charge.get('billingPeriod')!r}; only Month and Annual map to a plan",
            )
        billing_period, months = period
        price = sum(
            (
                self._charge_amount(c, number)
                for p, c in recurring
                if p is main_plan and c.get("billingPeriod") == main_charge.get("billingPeriod")
            ),
            Decimal("0"),
        )
        started = _date(raw.get("subscriptionStartDate") or raw.get("contractEffectiveDate"))
        if started is None:
            raise ConnectorDataError(VENDOR, "fetch_billing", f"subscription {number} has no start date")
        # For charges billed in advance, processedThroughDate is the start of the period last
        # invoiced and chargedThroughDate the day after its end.
        period_start = _date(main_charge.get("processedThroughDate"))
        charged_through = _date(main_charge.get("chargedThroughDate"))
        if period_start and charged_through and charged_through > period_start:
            period_end = charged_through - timedelta(days=1)
        else:  # nothing invoiced yet: the first period from the charge's start
            period_start = _date(main_charge.get("effectiveStartDate")) or started
            period_end = _add_months(period_start, months) - timedelta(days=1)
        cancelled = _date(raw.get("cancelledDate"))
        return Subscription(
            subscription_id=str(number),
            customer_id=customer_id,
            plan=Plan(
                plan_id=str(main_plan.get("productRatePlanId") or main_plan.get("id")),
                name=main_plan.get("ratePlanName") or main_plan.get("productName") or "",
                billing_period=billing_period,
                price=price,
                currency=str(main_charge.get("currency") or currency).upper(),
            ),
            status=status,
            started_at=started,
            current_period_start=period_start,
            current_period_end=period_end,
            cancel_requested_at=datetime(cancelled.year, cancelled.month, cancelled.day, tzinfo=UTC) if cancelled else None,
        )

    @staticmethod
    def _charge_amount(charge: dict[str, Any], subscription: str) -> Decimal:
        model = charge.get("model")
        price = charge.get("price")
        if model == "FlatFee" and price is not None:
            return _decimal(price, f"price of {subscription}")
        if model == "PerUnit" and price is not None:
            return _decimal(Decimal(str(price)) * Decimal(str(charge.get("quantity") or 1)), f"price of {subscription}")
        # Tiered and volume models have no single price; their monthly recurring revenue does.
        mrr = charge.get("mrr")
        if mrr is None:
            raise ConnectorDataError(VENDOR, "fetch_billing", f"a recurring charge of {subscription} has neither price nor mrr")
        months = _BILLING_PERIOD.get(charge.get("billingPeriod", ""), ("", 1))[1]
        return _decimal(Decimal(str(mrr)) * months, f"mrr of {subscription}")

    def _invoice(self, raw: dict[str, Any], customer_id: str, currency: str) -> Invoice | None:
        zuora_status = raw.get("status")
        balance = Decimal(str(raw.get("balance") or 0))
        if zuora_status == "Posted":
            status = "paid" if balance <= 0 else "open"
        elif zuora_status in ("Canceled", "Cancelled"):
            status = "void"
        else:
            return None  # drafts and errored invoices were never sent
        number = raw.get("invoiceNumber") or raw.get("id")
        items = raw.get("invoiceItems") or []
        starts = [d for d in (_date(i.get("serviceStartDate")) for i in items if i.get("subscriptionName")) if d]
        ends = [d for d in (_date(i.get("serviceEndDate")) for i in items if i.get("subscriptionName")) if d]
        issued = _date(raw.get("invoiceDate"))
        if issued is None:
            raise ConnectorDataError(VENDOR, "fetch_billing", f"invoice {number} has no invoiceDate")
        return Invoice(
            invoice_id=str(number),
            customer_id=customer_id,
            subscription_id=next((i["subscriptionName"] for i in items if i.get("subscriptionName")), None),
            period_start=min(starts) if starts else None,
            period_end=max(ends) if ends else None,
            issued_at=issued,
            amount=_decimal(raw.get("amount", 0), f"amount of invoice {number}"),
            currency=str(raw.get("currency") or currency).upper(),
            status=status,
            lines=[self._line(item, number) for item in items],
        )

    def _line(self, item: dict[str, Any], invoice: str) -> InvoiceLine:
        amount = _decimal(item.get("chargeAmount", 0), f"an item of invoice {invoice}")
        name = f"{item.get('chargeName') or ''} {item.get('chargeDescription') or ''}".lower()
        processing = str(item.get("processingType") or "").lower()
        if processing in ("discount", "adjustment") or amount < 0:
            kind = "adjustment"
        elif any(fee in name for fee in (n.lower() for n in self.late_fee_charge_names)):
            kind = "late_fee"
        elif item.get("unitOfMeasure") and item.get("subscriptionName") and processing == "usage":
            kind = "usage"
        elif item.get("subscriptionName"):
            kind = "subscription"
        else:
            kind = "one_time"
        return InvoiceLine(
            description=item.get("chargeDescription") or item.get("chargeName") or item.get("productName") or "",
            amount=amount,
            kind=kind,
        )

    def find_credits(self, customer_id: str, case_id: str) -> list[MoneyReceipt]:
        """Credit memos on the account whose comment carries our reference `[case <id>, ...]`
        (written by issue_credit): found whatever key they were made with, however long ago."""
        operation = "find_credits"
        account = self._account(customer_id, operation)
        tag = re.compile(r"\[case " + re.escape(case_id) + r",")
        params: dict[str, Any] = {"accountId": account["basicInfo"]["id"], "page": 1, "pageSize": PAGE_SIZE}
        body = self._get(operation, "/v1/creditmemos", params=params)
        memos = list(body.get("creditmemos") or [])
        while body.get("nextPage") and len(memos) < 10_000:
            body = self._get(operation, self._http.same_origin_path(body["nextPage"]))
            memos += body.get("creditmemos") or []
        found = []
        for memo in memos:
            if not tag.search(str(memo.get("comment") or "")) or memo.get("status") in ("Canceled", "Cancelled", "Error"):
                continue
            currency = str(memo.get("currency") or self._currency(account)).upper()
            found.append(
                MoneyReceipt(
                    kind="credit",
                    reference=str(memo.get("number") or memo.get("id")),
                    amount=_decimal(memo.get("amount"), "credit memo amount").quantize(Decimal("0.01")),
                    currency=currency,
                    idempotency_key="",
                    replayed=True,
                )
            )
        return found

    def issue_credit(
        self,
        customer_id: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        reason: str,
        *,
        case_id: str | None = None,
    ) -> MoneyReceipt:
        operation = "issue_credit"
        if not self.credit_charge_id or _CHARGE_ID.fullmatch(self.credit_charge_id) is None:
            raise ConnectorConfigError(
                VENDOR, operation, "credit_charge_id (ZUORA_CREDIT_CHARGE_ID) must name the product rate plan charge credits use"
            )
        if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
            raise RefundRefused(f"credit amount must be positive with at most 2 decimals, not {amount}")
        if not idempotency_key or len(idempotency_key) > 255:
            raise RefundRefused("a credit needs an idempotency key of 1 to 255 characters")
        try:
            account = self._account(customer_id, operation)
        except ConnectorNotFound as exc:
            raise RefundRefused(f"no Zuora billing account {customer_id}: {exc.detail}") from exc
        account_currency = self._currency(account)
        if currency.upper() != account_currency:
            raise RefundRefused(f"credit in {currency} on a Zuora account billed in {account_currency}")
        body: dict[str, Any] = {
            "accountId": account["basicInfo"]["id"],
            "autoPost": self.auto_post_credits,
            "comment": f"{reason[:150]} [{f'case {case_id}, ' if case_id else ''}key {idempotency_key}]"[:255],
            "charges": [
                # A 2-decimal amount is exact as a JSON number.
                {"productRatePlanChargeId": self.credit_charge_id, "amount": float(amount), "comment": reason[:255]},
            ],
        }
        if self.credit_reason_code:
            body["reasonCode"] = self.credit_reason_code
        try:
            reply = self._http.request(
                operation,
                "POST",
                "/v1/creditmemos",
                json=body,
                headers={IDEMPOTENCY_HEADER: idempotency_key},
                check=zuora_check(operation),
            ).json()
        except (ConnectorRequestError, ConnectorNotFound) as exc:
            # Zuora looked at this credit and said no: a retry with the same key says no again.
            raise RefundRefused(f"Zuora refused the credit memo: {exc.detail}") from exc
        memo_id = reply.get("id")
        if not memo_id:
            raise ConnectorError(VENDOR, operation, "the credit memo reply has no id: the credit is not confirmed")
        if reply.get("status") in ("Canceled", "Cancelled", "Error"):
            raise RefundRefused(f"Zuora credit memo {reply.get('number') or memo_id} is {reply['status']}")
        return MoneyReceipt(
            kind="credit",
            reference=str(reply.get("number") or memo_id),
            amount=Decimal(str(reply.get("amount", amount))).quantize(Decimal("0.01")),
            currency=str(reply.get("currency") or account_currency).upper(),
            idempotency_key=idempotency_key,
            # Zuora replays a repeated key's first reply without saying so.
            replayed=False,
        )
