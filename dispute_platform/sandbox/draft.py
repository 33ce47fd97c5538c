"""The world under construction: drafts of accounts, cases and what each scenario expects."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from dispute_platform.domain.facts import cents
from dispute_platform.domain.models import Account, Charge, Invoice, InvoiceLine, Plan, PriorDispute, Refund, Segment
from dispute_platform.domain.world import WorldIncident, WorldSubscription
from dispute_platform.sandbox.common import (
    GRACE_DAYS,
    LATE_FEE,
    LATE_SHARE,
    ONE_TIME_ITEMS,
    RETRY_SHARE,
    SHIPPING,
    USAGE_SHARE,
    WORLD_TODAY,
    D,
    at,
    build_plans,
    plan_periods,
    token,
)


@dataclass
class Expect:
    """What the rules must decide for a scenario (checked at build time)."""

    action: str | None = None
    amount: str = "0.00"
    invalid: tuple[str, ...] = ()


@dataclass
class CaseDraft:
    scenario: str  # short label, e.g. "outage exactly 4 h"
    customer_id: str
    dispute_type: str
    amount: Decimal
    opened_at: datetime
    subject: str
    description: str
    charge_id: str | None
    expect: Expect
    origin: str = "web"
    sample: bool = False
    # For sample events that deliberately disagree with the CRM (customer, currency, amount).
    event_overrides: dict = field(default_factory=dict)
    event_expect: Expect | None = None
    case_id: str = ""


@dataclass
class Profile:
    """How an account's billing history is generated."""

    plan: Plan
    started_at: date
    card: str
    clean: bool = False  # scenario accounts: no random failures, add-ons or refunds
    unpaid_last: int = 0
    closed_after: date | None = None


class WorldDraft:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.plans = build_plans()
        self.accounts: list[Account] = []
        self.profiles: dict[str, Profile] = {}
        self.subscriptions: dict[str, WorldSubscription] = {}
        self.invoices: list[Invoice] = []
        self.charges: list[Charge] = []
        self.refunds: list[Refund] = []
        self.disputes: list[PriorDispute] = []
        self.incidents: list[WorldIncident] = []
        self.cases: list[CaseDraft] = []
        self.claimed: set[str] = set()
        self._invoice_seq = 0
        self._used_tokens: set[str] = set()

    # -- ids ---------------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        while True:
            value = token(self.rng, prefix)
            if value not in self._used_tokens:
                self._used_tokens.add(value)
                return value

    def new_invoice_id(self) -> str:
        self._invoice_seq += 1
        return f"INV-{self._invoice_seq:06d}"

    # -- lookups -----------------------------------------------------------------------------

    def account(self, customer_id: str) -> Account:
        return next(a for a in self.accounts if a.customer_id == customer_id)

    def card_last4(self, customer_id: str) -> str:
        return self.profiles[customer_id].card[-4:]

    def plan_charge_on(self, customer_id: str, day: date) -> Charge:
        """The settled plan charge whose billing period contains `day`."""
        return next(
            c
            for c in self.charges
            if c.customer_id == customer_id
            and c.status == "succeeded"
            and c.period_start is not None
            and c.period_start <= day <= c.period_end
        )

    def invoice(self, invoice_id: str) -> Invoice:
        return next(i for i in self.invoices if i.invoice_id == invoice_id)

    # -- accounts ----------------------------------------------------------------------------

    def claim(
        self,
        segment: Segment,
        plan: str,
        started_at: date,
        *,
        status: str = "active",
        standing: str = "good",
        unpaid_last: int = 0,
    ) -> Account:
        """Take an unused account of the segment for a scenario and give it a clean history on
        the given plan, so that nothing random changes what the rules decide."""
        account = self.rng.choice(self.unclaimed(segment))
        self.claimed.add(account.customer_id)
        account.status, account.standing = status, standing
        account.created_at = min(account.created_at, started_at - timedelta(days=self.rng.randint(0, 20)))
        profile = self.profiles[account.customer_id]
        profile.plan, profile.started_at, profile.clean, profile.unpaid_last = (
            self.plans[plan],
            started_at,
            True,
            unpaid_last,
        )
        profile.closed_after = None
        self.bill_subscription(account)
        return account

    def unclaimed(self, segment: Segment) -> list[Account]:
        """Accounts of the segment that no scenario uses yet and that are active and in good
        standing (a scenario that wants another standing sets it)."""
        return [
            a
            for a in self.accounts
            if a.segment == segment and a.customer_id not in self.claimed and a.status == "active" and a.standing == "good"
        ]

    # -- billing -----------------------------------------------------------------------------

    def charge(
        self,
        customer_id: str,
        amount: Decimal,
        created_at: datetime,
        kind: str,
        description: str,
        invoice_id: str | None,
        *,
        status: str = "succeeded",
        period: tuple[date, date] | None = None,
        fulfillment: str = "not_applicable",
    ) -> Charge:
        charge = Charge(
            charge_id=self.new_id("ch_"),
            customer_id=customer_id,
            amount=amount,
            created_at=created_at,
            status=status,
            description=description,
            kind=kind,
            invoice_id=invoice_id,
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
            card_last4=self.card_last4(customer_id),
            amount_refunded=D("0.00"),
            fulfillment_status=fulfillment,
        )
        self.charges.append(charge)
        return charge

    def add_invoice(
        self,
        customer_id: str,
        issued_at: date,
        lines: list[InvoiceLine],
        *,
        status: str = "paid",
        subscription_id: str | None = None,
        period: tuple[date, date] | None = None,
    ) -> Invoice:
        invoice = Invoice(
            invoice_id=self.new_invoice_id(),
            customer_id=customer_id,
            subscription_id=subscription_id,
            period_start=period[0] if period else None,
            period_end=period[1] if period else None,
            issued_at=issued_at,
            amount=sum((line.amount for line in lines), D("0.00")),
            status=status,
            lines=lines,
        )
        self.invoices.append(invoice)
        return invoice

    def bill_subscription(self, account: Account) -> None:
        """The subscription and one invoice + charge per billing period, up to today."""
        profile = self.profiles[account.customer_id]
        plan, cid = profile.plan, account.customer_id
        periods = plan_periods(plan, profile.started_at, WORLD_TODAY)
        if profile.closed_after:
            periods = [p for p in periods if p[0] <= profile.closed_after]
        sub_id = self.new_id("sub_")
        # An annual customer is behind by one invoice at most: the next one is a year away.
        unpaid_last = profile.unpaid_last if plan.billing_period == "monthly" else min(1, profile.unpaid_last)
        for index, period in enumerate(periods):
            if index >= len(periods) - unpaid_last:
                mode = "unpaid"
            elif profile.clean or (WORLD_TODAY - period[0]).days < GRACE_DAYS + 6:
                mode = "paid"  # a retry or late payment this recent would be dated after today
            else:
                mode = self.rng.choices(["paid", "retry", "late"], [1 - RETRY_SHARE - LATE_SHARE, RETRY_SHARE, LATE_SHARE])[0]
            self.bill_period(cid, sub_id, plan, period, "subscription" if index == 0 else "renewal", mode)
            if (
                not profile.clean
                and plan.name in ("Business", "Enterprise")
                and plan.billing_period == "monthly"
                and index > 0
                and mode != "unpaid"
                and self.rng.random() < USAGE_SHARE
            ):
                self.bill_usage(cid, periods[index - 1], at(period[0], 10, self.rng.randrange(60)))
        status = {"good": "active"}.get(account.standing, "past_due")
        cancel = None
        if account.status == "closed":
            status = "cancelled"
            cancel = at(
                periods[-1][0] + timedelta(days=self.rng.randint(3, 20)),
                self.rng.randint(8, 20),
                self.rng.randrange(60),
            )
        self.subscriptions[cid] = WorldSubscription(
            subscription_id=sub_id,
            customer_id=cid,
            plan_id=plan.plan_id,
            status=status,
            started_at=profile.started_at,
            current_period_start=periods[-1][0],
            current_period_end=periods[-1][1],
            cancel_requested_at=cancel,
        )

    def bill_period(
        self,
        cid: str,
        sub_id: str,
        plan: Plan,
        period: tuple[date, date],
        kind: str,
        mode: str,
        *,
        amount: Decimal | None = None,
    ) -> tuple[Invoice, Charge | None]:
        """One period's invoice and its charge attempts. `mode`: paid | retry (declined, paid 3
        days later) | late (declined twice, paid after the grace period: a late fee follows) |
        unpaid (declined, invoice still open)."""
        amount = plan.price if amount is None else amount
        label = f"{plan.name} plan ({plan.billing_period}), {period[0].isoformat()} to {period[1].isoformat()}"
        invoice = self.add_invoice(
            cid,
            period[0],
            [InvoiceLine(description=label, amount=amount, kind="subscription")],
            status="open" if mode == "unpaid" else "paid",
            subscription_id=sub_id,
            period=period,
        )
        first = at(period[0], 6, self.rng.randrange(180))
        if mode == "paid":
            return invoice, self.charge(cid, amount, first, kind, label, invoice.invoice_id, period=period)
        self.charge(cid, amount, first, kind, label + " (card declined)", invoice.invoice_id, status="failed", period=period)
        if mode == "unpaid":
            return invoice, None
        if mode == "retry":
            paid = self.charge(cid, amount, first + timedelta(days=3), kind, label, invoice.invoice_id, period=period)
            return invoice, paid
        self.charge(
            cid,
            amount,
            first + timedelta(days=3),
            kind,
            label + " (card declined)",
            invoice.invoice_id,
            status="failed",
            period=period,
        )
        paid = self.charge(
            cid, amount, first + timedelta(days=GRACE_DAYS + 4, hours=5), kind, label, invoice.invoice_id, period=period
        )
        self.late_fee(cid, invoice, paid.created_at + timedelta(days=1))
        return invoice, paid

    def late_fee(self, cid: str, for_invoice: Invoice, when: datetime) -> Charge:
        """A late fee is its own invoice and charge: sharing the renewal's invoice would make the
        duplicate rule (same invoice = duplicate) treat it as a second charge for the renewal."""
        label = f"Late payment fee for {for_invoice.invoice_id}"
        invoice = self.add_invoice(cid, when.date(), [InvoiceLine(description=label, amount=LATE_FEE, kind="late_fee")])
        return self.charge(cid, LATE_FEE, when, "late_fee", label, invoice.invoice_id)

    def bill_usage(self, cid: str, period: tuple[date, date], when: datetime) -> Charge:
        calls = self.rng.randint(2, 40) * 50_000
        api = cents(D(calls) * D("0.0002"))
        lines = [InvoiceLine(description=f"API requests above plan allowance ({calls:,})", amount=api, kind="usage")]
        if self.rng.random() < 0.4:
            gb = self.rng.randint(5, 120)
            lines.append(InvoiceLine(description=f"Additional storage ({gb} GB)", amount=cents(D(gb) * D("0.50")), kind="usage"))
        invoice = self.add_invoice(cid, when.date(), lines, period=period)
        label = f"Usage, {period[0].isoformat()} to {period[1].isoformat()}"
        return self.charge(cid, invoice.amount, when, "usage", label, invoice.invoice_id)

    def one_time(self, cid: str, item: str, when: datetime, fulfillment: str, *, quantity: int = 1) -> Charge:
        name, unit, physical = ONE_TIME_ITEMS[item]
        lines = [
            InvoiceLine(description=f"{name} x {quantity}" if quantity > 1 else name, amount=unit * quantity, kind="one_time")
        ]
        if physical:
            lines.append(InvoiceLine(description="Shipping", amount=SHIPPING, kind="one_time"))
        invoice = self.add_invoice(cid, when.date(), lines)
        return self.charge(
            cid, invoice.amount, when, "one_time", lines[0].description, invoice.invoice_id, fulfillment=fulfillment
        )

    def duplicate(self, original: Charge, later: timedelta, *, same_invoice: bool = True) -> Charge:
        """A second successful charge for the same invoice (a retry that should not have run), or,
        with `same_invoice=False`, for the same period on a second invoice (a billing-run rerun)."""
        invoice_id = original.invoice_id
        if not same_invoice:
            first = self.invoice(original.invoice_id)
            invoice_id = self.add_invoice(
                original.customer_id,
                first.issued_at,
                [line.model_copy() for line in first.lines],
                subscription_id=first.subscription_id,
                period=(first.period_start, first.period_end),
            ).invoice_id
        dup = self.charge(
            original.customer_id,
            original.amount,
            original.created_at + later,
            original.kind,
            original.description,
            invoice_id,
            period=(original.period_start, original.period_end) if original.period_start else None,
            fulfillment=original.fulfillment_status,
        )
        return dup

    def refund(self, charge: Charge, amount: Decimal, when: datetime, reason: str) -> Refund:
        """A refund made before today; the charge's amount_refunded follows it."""
        refund = Refund(refund_id=self.new_id("re_"), charge_id=charge.charge_id, amount=amount, created_at=when, reason=reason)
        charge.amount_refunded = charge.amount_refunded + amount
        self.refunds.append(refund)
        return refund

    def incident(
        self,
        start: datetime,
        hours: Decimal | float,
        summary: str,
        *,
        segments: tuple = (),
        customers: tuple = (),
        scheduled: bool = False,
    ) -> WorldIncident:
        incident = WorldIncident(
            incident_id="",  # numbered by start time at the end
            started_at=start,
            ended_at=start + timedelta(seconds=int(D(str(hours)) * 3600)),
            summary=summary,
            scheduled_maintenance=scheduled,
            affected_segments=list(segments),
            affected_customer_ids=list(customers),
        )
        self.incidents.append(incident)
        return incident

    def set_cancel_request(self, cid: str, when: datetime) -> None:
        self.subscriptions[cid].cancel_requested_at = when

    def open_case(
        self,
        scenario: str,
        account: Account,
        dispute_type: str,
        amount: Decimal | str,
        opened: datetime,
        charge: Charge | str | None,
        subject: str,
        description: str,
        expect: Expect,
        **extra,
    ) -> CaseDraft:
        draft = CaseDraft(
            scenario=scenario,
            customer_id=account.customer_id,
            dispute_type=dispute_type,
            amount=D(amount),
            opened_at=opened,
            subject=subject,
            description=description,
            charge_id=charge.charge_id if isinstance(charge, Charge) else charge,
            expect=expect,
            origin=extra.pop("origin", self.rng.choice(["web", "web", "email", "chat"])),
            **extra,
        )
        self.cases.append(draft)
        return draft
