"""Historical resolutions: synthetic past disputes, each decided by the real rules."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from dispute_platform.domain.context import enrich
from dispute_platform.domain.facts import cents
from dispute_platform.domain.models import (
    Account,
    BillingRecord,
    Case,
    Charge,
    CrmRecord,
    DisputeEvent,
    EnrichedContext,
    Incident,
    PaymentRecord,
    Plan,
    Refund,
    Segment,
    Subscription,
)
from dispute_platform.domain.precedent import outage_credit_share
from dispute_platform.domain.world import SandboxWorld
from dispute_platform.sandbox.common import (
    HISTORY_FROM,
    HISTORY_INVALID_SHARE,
    HISTORY_MIX,
    HISTORY_TO,
    LATE_FEE,
    ONE_TIME_ITEMS,
    SHIPPING,
    D,
    add_months,
    at,
    money,
)
from dispute_platform.sandbox.decision import Decision, decide


@dataclass
class HistoryItem:
    row: dict
    context: EnrichedContext
    branch: str


DUPLICATE_TEXTS = [
    "I was charged twice for the same invoice this month.",
    "My card shows two identical {amount} payments to Brightwave on the same day.",
    "Double charge on my account, please refund one of them.",
    "You billed us two times for one {plan} renewal.",
    "There are 2 charges of {amount} for the same billing period on our statement.",
    "Same invoice paid twice, looks like your system retried a payment that had already gone through.",
    "Why was my subscription taken twice? One plan, one account.",
    "Our finance team spotted a duplicate {amount} charge for the {plan} plan.",
    "Charged {amount} twice within a few minutes. Please reverse the second charge.",
    "I see the same charge twice on my credit card statement.",
    "Two payments for one month of service. Refund the extra one please.",
    "Duplicate payment: the renewal went through twice.",
    "Hello, I think I got billed double for {month}.",
    "The {plan} subscription fee was debited two times from our account.",
    "Received two receipts for the same invoice number.",
    "Your billing charged me twice, I only have one workspace.",
    "Bank shows duplicate transactions from Brightwave, both {amount}.",
    "Please refund the repeated charge, we paid this invoice already.",
    "We were invoiced and charged twice for the same period.",
    "Twice charged for my plan. Fix this and refund the second payment.",
    "Got hit with two identical charges after updating my card.",
    "Payment taken twice for the {month} renewal.",
    "Looks like a double debit, same amount, same day.",
    "Charged again for something I already paid for this month.",
]
DUPLICATE_ONE_TIME_TEXTS = [
    "We ordered one {item} and were charged twice for it.",
    "The {item} purchase shows up twice on our card, {amount} each time.",
    "Charged two times for a single {item} order.",
    "Paid for the {item} once but the charge went through twice.",
]
ONE_TIME_NAMES = {
    "workshop": "onboarding workshop",
    "keys": "hardware security keys",
    "training": "admin training session",
}
DUPLICATE_DISTINCT_TEXTS = [
    "Two charges this month, one must be a mistake.",
    "I see two different charges from you in {month}, I think one is a duplicate.",
    "Charged twice? There's my plan and then another payment two days later.",
]
OUTAGE_TEXTS = [
    "The service was down for {hours} hours and we could not work.",
    "Your platform was unavailable during business hours, we want compensation.",
    "Outage on {month_day} stopped our team for most of the day.",
    "Dashboard kept failing to load, lost a whole afternoon.",
    "API errors for hours, our integrations broke. Credit please.",
    "Brightwave was down again. Requesting a service credit.",
    "We pay for reliability, and the downtime this month was not acceptable.",
    "Login did not work for our users for a long stretch.",
    "Webhooks stopped and our orders were not synced during the outage.",
    "Please compensate us for the downtime on {month_day}.",
]
CANCEL_TEXTS = [
    "I cancelled right after the renewal and want my money back.",
    "We no longer use the product and cancelled, please refund the last charge.",
    "Cancelled my plan, but I was still charged. Refund please.",
    "The renewal caught us by surprise, we cancelled soon after.",
    "Forgot to cancel before the renewal date. Can I get a refund?",
    "We switched tools and cancelled the subscription.",
    "Requesting a refund after cancelling the {plan} plan.",
    "Asked to close our account, expecting a refund of the renewal.",
]
UNAUTHORIZED_TEXTS = [
    "I don't recognise this charge.",
    "Someone used our company card without permission for this charge.",
    "This payment was not authorised by anyone on our team.",
    "Fraudulent charge on my card from Brightwave.",
    "A former employee's account is still charging our card.",
    "I never signed up for this.",
]
WRONG_AMOUNT_TEXTS = [
    "I was charged more than my plan price.",
    "The amount on this charge is wrong, our contract says otherwise.",
    "You charged {amount}, that is not what we agreed.",
    "Price went up without notice.",
    "Billed the wrong amount for the {plan} plan.",
    "The charge does not match the quote we signed.",
]
LATE_FEE_TEXTS = [
    "Please waive the late fee, the payment was only a few days late.",
    "My card expired and I fixed it right away, remove the late fee.",
    "We paid late because of a bank holiday. Can you refund the fee?",
    "Late fee charged but we paid as soon as we got the reminder.",
    "Please remove the late payment fee.",
]
PNR_TEXTS = [
    "The hardware keys I ordered never arrived.",
    "Paid for the onboarding package and nothing happened.",
    "Still waiting on my order, no delivery yet.",
    "My security keys have not been delivered.",
    "We never received what we paid for.",
    "Order shows shipped but nothing arrived.",
]
GENERAL_TEXTS = [
    "Support has been slow to answer our tickets.",
    "Not happy with the latest changes to the product.",
    "The invoices are confusing and hard to find.",
    "We expected more from the account manager.",
    "A feature we rely on was removed.",
    "The mobile app keeps logging us out.",
]


def money_str(amount: Decimal) -> str:
    return f"{amount:.2f}"


class HistoryFactory:
    """Builds one synthetic past dispute per row: an account from the world (its segment and
    plan), invented past charges, and the context the platform would have had then."""

    def __init__(self, world: SandboxWorld, rng: random.Random):
        self.world, self.rng = world, rng
        self.accounts = [a for a in world.accounts if a.status == "active" and world.subscription_for(a.customer_id)]
        self.seq = 0

    # -- building blocks -----------------------------------------------------------------------

    def charge_id(self, suffix: str) -> str:
        return f"ch_hist_{self.seq:04d}_{suffix}"

    def plan_charge(
        self,
        plan: Plan,
        created: datetime,
        suffix: str,
        *,
        amount: Decimal | None = None,
        invoice: str | None = None,
        kind: str = "renewal",
    ) -> Charge:
        months = 12 if plan.billing_period == "annual" else 1
        start = created.date()
        end = add_months(date(start.year, start.month, min(start.day, 28)), months) - timedelta(days=1)
        return Charge(
            charge_id=self.charge_id(suffix),
            customer_id="",
            amount=plan.price if amount is None else amount,
            created_at=created,
            kind=kind,
            invoice_id=invoice or f"INV-H{self.seq:04d}{suffix}",
            period_start=start,
            period_end=end,
            card_last4="4242",
            description=f"{plan.name} plan ({plan.billing_period})",
        )

    def other_charge(
        self, kind: str, amount: Decimal, created: datetime, suffix: str, fulfillment: str = "not_applicable"
    ) -> Charge:
        return Charge(
            charge_id=self.charge_id(suffix),
            customer_id="",
            amount=amount,
            created_at=created,
            kind=kind,
            invoice_id=f"INV-H{self.seq:04d}{suffix}",
            card_last4="4242",
            fulfillment_status=fulfillment,
        )

    def opened_at(self) -> datetime:
        span = (HISTORY_TO - HISTORY_FROM).days
        day = HISTORY_FROM + timedelta(days=self.rng.randrange(span))
        return at(day, self.rng.randint(8, 20), self.rng.randrange(60))

    def context(
        self,
        account: Account,
        plan: Plan | None,
        dispute_type: str,
        amount: Decimal,
        opened: datetime,
        disputed: Charge | None,
        charges: list[Charge],
        *,
        incidents: list[Incident] = (),
        cancel: datetime | None = None,
        description: str = "",
    ) -> EnrichedContext:
        cid = account.customer_id
        charges = [c.model_copy(update={"customer_id": cid}) for c in charges]
        case = Case(
            case_id=f"HIST-{self.seq:04d}",
            customer_id=cid,
            dispute_type=dispute_type,
            amount=amount,
            description=description,
            opened_at=opened,
            charge_id=disputed.charge_id if disputed else None,
        )
        subscription = None
        if plan is not None:
            subscription = Subscription(
                subscription_id=f"sub_hist_{self.seq:04d}",
                customer_id=cid,
                plan=plan,
                started_at=opened.date() - timedelta(days=400),
                current_period_start=opened.date() - timedelta(days=10),
                current_period_end=opened.date() + timedelta(days=20),
                cancel_requested_at=cancel,
            )
        crm = CrmRecord(case=case, account=account, incidents=list(incidents))
        event = DisputeEvent(
            case_id=case.case_id,
            customer_id=cid,
            dispute_type=dispute_type,
            amount=amount,
            currency="USD",
            description=description,
            occurred_at=opened,
        )
        refunds = []
        for c in charges:
            if c.amount_refunded > 0:
                refunds.append(
                    Refund(
                        refund_id=f"re_hist_{c.charge_id[8:]}",
                        charge_id=c.charge_id,
                        amount=c.amount_refunded,
                        created_at=c.created_at + timedelta(days=2),
                        reason="duplicate",
                    )
                )
        return enrich(event, crm, BillingRecord(subscription=subscription), PaymentRecord(charges=charges, refunds=refunds))

    def text(self, templates: list[str], **values) -> str:
        return self.rng.choice(templates).format(**values)

    # -- one builder per dispute type; each returns (context, branch) ------------------------------

    def duplicate_charge(self, account: Account, plan: Plan, opened: datetime, stale: bool) -> tuple[EnrichedContext, str]:
        charged = opened - timedelta(days=self.rng.randint(1, 40) + (140 if stale else 0), hours=self.rng.randint(0, 9))
        first = self.plan_charge(plan, charged, "a")
        values = {"amount": money(plan.price), "plan": plan.name, "month": charged.strftime("%B")}
        roll = self.rng.random()
        if roll < 0.12:
            # A one-time purchase charged twice for its one invoice (a double-clicked checkout).
            item = self.rng.choice(["workshop", "keys", "training"])
            qty = self.rng.randint(2, 6) if item == "keys" else 1
            amount = ONE_TIME_ITEMS[item][1] * qty + (SHIPPING if ONE_TIME_ITEMS[item][2] else 0)
            first = self.other_charge("one_time", amount, charged, "a", "delivered")
            dup = first.model_copy(
                update={
                    "charge_id": self.charge_id("b"),
                    "created_at": charged + timedelta(seconds=self.rng.randint(5, 90)),
                }
            )
            text = self.text(DUPLICATE_ONE_TIME_TEXTS, item=ONE_TIME_NAMES[item], amount=money(amount))
            return self.context(
                account, plan, "duplicate_charge", dup.amount, opened, dup, [first, dup], description=text
            ), "same_invoice"
        if roll < 0.84:
            same_invoice = self.rng.random() < 0.7
            dup = first.model_copy(
                update={
                    "charge_id": self.charge_id("b"),
                    "created_at": charged + timedelta(minutes=self.rng.randint(1, 600)),
                    "invoice_id": first.invoice_id if same_invoice else f"INV-H{self.seq:04d}b",
                }
            )
            text = self.text(DUPLICATE_TEXTS, **values)
            return self.context(account, plan, "duplicate_charge", dup.amount, opened, dup, [first, dup], description=text), (
                "same_invoice" if same_invoice else "same_period"
            )
        addon = self.other_charge(
            "one_time",
            D(self.rng.choice(["250.00", "300.00", "135.00"])),
            charged + timedelta(days=2),
            "b",
            "delivered",
        )
        text = self.text(DUPLICATE_DISTINCT_TEXTS, **values)
        return self.context(
            account, plan, "duplicate_charge", addon.amount, opened, addon, [first, addon], description=text
        ), "distinct"

    def service_outage(self, account: Account, plan: Plan, opened: datetime, stale: bool) -> tuple[EnrichedContext, str]:
        monthly_plan = (
            plan
            if plan.billing_period == "monthly"
            else next(p for p in self.world.plans if p.name == plan.name and p.billing_period == "monthly")
        )
        charged = opened - timedelta(days=self.rng.randint(5, 25) + (140 if stale else 0))
        charge = self.plan_charge(monthly_plan, charged, "a")
        hours = D(self.rng.choice(["0.5", "0.75", "1", "1.5", "2", "3", "4", "5", "6", "8", "12", "20", "24", "26", "36"]))
        scheduled = self.rng.random() < 0.08
        start = at(charged.date() + timedelta(days=2), 10, 0)
        incidents = [
            Incident(
                incident_id="INC-H",
                started_at=start,
                ended_at=start + timedelta(seconds=int(hours * 3600)),
                scheduled_maintenance=scheduled,
                summary="Outage",
            )
        ]
        disputed = monthly_plan.price if self.rng.random() < 0.8 else cents(monthly_plan.price / 2)
        text = self.text(OUTAGE_TEXTS, hours=f"{hours.normalize()}", month_day=start.strftime("%B %d").replace(" 0", " "))
        ctx = self.context(
            account,
            monthly_plan,
            "service_outage",
            disputed,
            opened,
            charge,
            [charge],
            incidents=incidents,
            description=text,
        )
        return ctx, "scheduled" if scheduled else f"{hours.normalize()}h"

    def cancellation_refund(self, account: Account, plan: Plan, opened: datetime, stale: bool) -> tuple[EnrichedContext, str]:
        if plan.name == "Enterprise" and self.rng.random() < 0.7:
            plan = next(p for p in self.world.plans if p.plan_id == "business-annual")
        days = self.rng.choice([None, -2, 0, 1, 3, 5, 7, 10, 13, 14, 15, 16, 20, 25, 29, 30, 31, 35, 45, 60])
        charged = opened - timedelta(days=max(days or 0, 0) + self.rng.randint(1, 5) + (140 if stale else 0))
        charge = self.plan_charge(plan, charged, "a")
        cancel = at(charged.date() + timedelta(days=days), 16, 0) if days is not None else None
        text = self.text(CANCEL_TEXTS, plan=plan.name)
        ctx = self.context(
            account,
            plan,
            "cancellation_refund",
            charge.amount,
            opened,
            charge,
            [charge],
            cancel=cancel,
            description=text,
        )
        return ctx, f"day {days}" if days is not None else "no request"

    def unauthorized(self, account: Account, plan: Plan, opened: datetime, stale: bool) -> tuple[EnrichedContext, str]:
        charged = opened - timedelta(days=self.rng.choice([2, 5, 9, 30, 75, 150, 200]))
        if self.rng.random() < 0.7:
            charge = self.plan_charge(plan, charged, "a")
        else:
            charge = self.other_charge("one_time", D("240.00"), charged, "a", "delivered")
        ctx = self.context(
            account,
            plan,
            "unauthorized",
            charge.amount,
            opened,
            charge,
            [charge],
            description=self.text(UNAUTHORIZED_TEXTS),
        )
        return ctx, "escalate"

    def wrong_amount(self, account: Account, plan: Plan, opened: datetime, stale: bool) -> tuple[EnrichedContext, str]:
        charged = opened - timedelta(days=self.rng.randint(2, 30) + (140 if stale else 0))
        branch = self.rng.choices(["over", "not_over", "usage"], [60, 30, 10])[0]
        if branch == "usage":
            charge = self.other_charge("usage", D(self.rng.choice(["84.20", "212.50", "57.00"])), charged, "a")
        else:
            delta = cents(plan.price * D(self.rng.choice(["0.10", "0.20", "0.25"]))) if branch == "over" else D("0")
            charge = self.plan_charge(plan, charged, "a", amount=plan.price + delta)
        disputed = charge.amount - plan.price if branch == "over" and self.rng.random() < 0.6 else charge.amount
        text = self.text(WRONG_AMOUNT_TEXTS, amount=money(charge.amount), plan=plan.name)
        return self.context(account, plan, "wrong_amount", disputed, opened, charge, [charge], description=text), branch

    def late_fee(self, account: Account, plan: Plan, opened: datetime, stale: bool) -> tuple[EnrichedContext, str]:
        charged = opened - timedelta(days=self.rng.randint(2, 25) + (140 if stale else 0))
        branch = self.rng.choices(["first", "prior", "past_due", "thirteen_months", "not_late_fee"], [55, 22, 12, 7, 4])[0]
        fee = self.other_charge("late_fee", LATE_FEE, charged, "a")
        charges = [fee]
        if branch == "prior":
            charges.append(self.other_charge("late_fee", LATE_FEE, charged - timedelta(days=self.rng.randint(40, 330)), "p"))
        if branch == "thirteen_months":
            charges.append(self.other_charge("late_fee", LATE_FEE, charged - timedelta(days=self.rng.randint(370, 400)), "p"))
        if branch == "past_due":
            account = account.model_copy(update={"standing": "past_due"})
        disputed = fee
        if branch == "not_late_fee":
            disputed = self.plan_charge(plan, charged, "r")
            charges = [disputed]
        ctx = self.context(
            account, plan, "late_fee", disputed.amount, opened, disputed, charges, description=self.text(LATE_FEE_TEXTS)
        )
        return ctx, branch

    def product_not_received(self, account: Account, plan: Plan, opened: datetime, stale: bool) -> tuple[EnrichedContext, str]:
        branch = self.rng.choices(["delivered", "not_delivered", "inside_window", "no_record"], [35, 45, 15, 5])[0]
        age = {
            "delivered": self.rng.randint(10, 40),
            "not_delivered": self.rng.randint(14, 45),
            "inside_window": self.rng.randint(2, 13),
            "no_record": self.rng.randint(5, 30),
        }[branch]
        charged = opened - timedelta(days=age + (140 if stale else 0))
        if branch == "no_record":
            charge = self.plan_charge(plan, charged, "a")
        else:
            status = "delivered" if branch == "delivered" else self.rng.choice(["not_delivered", "pending", "shipped"])
            item = self.rng.choice(["keys", "workshop", "training"])
            qty = self.rng.randint(2, 8) if item == "keys" else 1
            amount = ONE_TIME_ITEMS[item][1] * qty + (SHIPPING if ONE_TIME_ITEMS[item][2] else 0)
            charge = self.other_charge("one_time", amount, charged, "a", status)
        ctx = self.context(
            account,
            plan,
            "product_not_received",
            charge.amount,
            opened,
            charge,
            [charge],
            description=self.text(PNR_TEXTS),
        )
        return ctx, branch

    def general(self, account: Account, plan: Plan, opened: datetime, stale: bool) -> tuple[EnrichedContext, str]:
        charge = self.plan_charge(plan, opened - timedelta(days=self.rng.randint(2, 25)), "a")
        disputed = min(charge.amount, D(self.rng.choice(["50.00", "100.00", "200.00", "500.00"])))
        ctx = self.context(account, plan, "general", disputed, opened, None, [charge], description=self.text(GENERAL_TEXTS))
        return ctx, "enterprise" if account.segment == Segment.ENTERPRISE else "other"

    # -- one row -----------------------------------------------------------------------------

    def row(self, dispute_type: str) -> HistoryItem:
        self.seq += 1
        # General complaints skew enterprise (that is where goodwill credits exist).
        pool = self.accounts
        if dispute_type == "general" and self.rng.random() < 0.4:
            pool = [a for a in pool if a.segment == Segment.ENTERPRISE]
        account = self.rng.choice(pool).model_copy(update={"standing": "good"})
        plan = self.world.subscription_for(account.customer_id).plan
        stale = dispute_type not in ("unauthorized", "general") and self.rng.random() < HISTORY_INVALID_SHARE
        context, branch = getattr(self, dispute_type)(account, plan, self.opened_at(), stale)
        decision = decide(context)
        row = {
            "case_id": context.case_id,
            "customer_id": account.customer_id,
            "segment": account.segment.value,
            "dispute_type": dispute_type,
            "amount": money_str(context.crm.case.amount),
            "currency": "USD",
            "description": context.crm.case.description,
            "action": decision.action,
            "resolved_amount": money_str(decision.amount),
            "citations": citations_for(decision),
            "summary": summarize(decision, plan, branch),
            "outcome": "escalated" if decision.action == "escalate" else "resolved",
            "resolved_at": (context.crm.case.opened_at.date() + timedelta(days=self.rng.randint(1, 6))).isoformat(),
            "source": "seed",
        }
        return HistoryItem(row=row, context=context, branch=branch)


def citations_for(decision: Decision) -> list[str]:
    if not decision.valid:
        return ["POL-001 §2"]
    cites = list(decision.outcome.citations)
    if "above_approval_threshold" in decision.flags:
        cites.append("POL-001 §4")
    return cites


def summarize(decision: Decision, plan: Plan, branch: str) -> str:
    """One or two sentences, as a reviewer would write them: what, how much, why."""
    f, outcome, amount = decision.facts, decision.outcome, decision.amount
    if not decision.valid:
        reasons = {
            "outside_window": f"raised {f.days_since_charge} days after the charge, outside the 120-day window",
            "already_refunded": "the charge had already been refunded in full",
        }
        why = "; ".join(reasons.get(code, code.replace("_", " ")) for code in decision.issues)
        return f"Denied at validation, no proposal made: {why} (POL-001 §2)."
    if "above_approval_threshold" in decision.flags:
        return (
            f"Escalated: the policy remedy is a {outcome.action.value.replace('_', ' ')} of {money(outcome.amount)} "
            f"({', '.join(outcome.citations)}), above the $1,000.00 approval threshold, so it needs a second reviewer."
        )
    t = f.dispute_type
    if t == "duplicate_charge":
        if decision.action == "deny":
            return (
                f"Denied: the {money(f.charge_amount)} charge is a separate one-time purchase, not a second charge for the "
                f"same invoice or period as the {plan.name} renewal (POL-002 §3)."
            )
        what = "invoice" if branch == "same_invoice" else "billing period"
        return f"Refunded the duplicate {money(amount)} charge in full; a second successful charge for the same {what} was confirmed (POL-002 §2)."
    if t == "service_outage":
        if decision.action == "deny":
            if branch == "scheduled":
                return "Denied: the only downtime in the billing period was announced scheduled maintenance, which does not count (POL-003 §2)."
            return (
                f"Denied: {f.outage_hours} h of unscheduled outage in the billing period is under the 1 h threshold (POL-003 §2)."
            )
        share = outage_credit_share(f.outage_hours)
        capped = " (capped at the disputed amount)" if amount < cents(f.monthly_fee * share) else ""
        return (
            f"Credited {money(amount)}{capped}: {f.outage_hours} h of unscheduled outage in the billing period "
            f"earns {share:.0%} of the {money(f.monthly_fee)} monthly fee (POL-003 §2)."
        )
    if t == "cancellation_refund":
        if f.days_to_cancel_request is None:
            return "Denied: no cancellation request was on record for the subscription (POL-004 §4)."
        d = f.days_to_cancel_request
        if decision.action == "full_refund":
            return (
                f"Full refund of the {money(amount)} renewal: cancellation was requested on day {d}, within 14 days (POL-004 §2)."
            )
        if decision.action == "partial_refund":
            return f"Partial refund of {money(amount)} (11/12 of {money(f.charge_amount)}): annual plan cancelled on day {d}, inside the 15-30 day pro rata window (POL-004 §3)."
        return f"Denied: cancellation came on day {d} after the renewal of a {f.billing_period} plan, outside the refund windows (POL-004 §4)."
    if t == "unauthorized":
        return f"Escalated to the fraud team with the {money(amount)} charge: unauthorized-charge claims are never decided automatically (POL-005 §2)."
    if t == "wrong_amount":
        if decision.action == "escalate":
            return "Escalated: the disputed charge was usage, not a plan charge, so there was no contracted price to compare it with (POL-006 §1)."
        if decision.action == "deny":
            return f"Denied: charged {money(f.charge_amount)}, which matches the contracted {plan.name} price of {money(f.contracted_price)} (POL-006 §2)."
        return f"Refunded the {money(amount)} difference between the {money(f.charge_amount)} charged and the contracted {money(f.contracted_price)} (POL-006 §2)."
    if t == "late_fee":
        if decision.action == "escalate":
            return "Escalated: the charge the customer called a late fee was a plan renewal (POL-007 §1)."
        if decision.action == "deny":
            return f"Denied: {outcome.reason} (POL-007 §2)."
        return f"Refunded the {money(amount)} late fee: the first in 12 months on an account in good standing (POL-007 §2, §3)."
    if t == "product_not_received":
        if decision.action == "deny" and f.fulfillment_status == "delivered":
            return "Denied: the fulfilment record confirms delivery (POL-001 §6)."
        if decision.action == "deny":
            return f"Denied for now: only {f.days_since_charge} days since the charge, inside the 14-day delivery window; the customer may re-open it after (POL-001 §6)."
        if decision.action == "escalate":
            return "Escalated: the disputed charge was a subscription charge with no fulfilment record to check (POL-001 §6)."
        return f"Refunded {money(amount)} in full: still not delivered {f.days_since_charge} days after the charge (POL-001 §6)."
    if t == "general":
        if decision.action == "credit":
            capped = ", capped at the disputed amount" if amount < cents(f.monthly_fee * D("0.10")) else ""
            return f"Goodwill credit of {money(amount)} for an enterprise account: 10% of the {money(f.monthly_fee)} monthly fee{capped} (POL-008 §2)."
        return "Escalated: a general complaint that no specific policy covers needs a reviewer's judgement (POL-008 §3)."
    return outcome.reason


def build_history(world: SandboxWorld, rng: random.Random) -> list[HistoryItem]:
    factory = HistoryFactory(world, rng)
    types = [t for t, n in HISTORY_MIX.items() for _ in range(n)]
    rng.shuffle(types)
    return [factory.row(t) for t in types]


def render_history(items: list[HistoryItem]) -> str:
    return "".join(json.dumps(item.row, sort_keys=True, ensure_ascii=False) + "\n" for item in items)
