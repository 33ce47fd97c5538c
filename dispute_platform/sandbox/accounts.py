"""Accounts and the random part of their history (invoices, charges, refunds, disputes, incidents)."""

from __future__ import annotations

import random
from datetime import date, timedelta

from dispute_platform.domain.facts import cents
from dispute_platform.domain.models import Account, PriorDispute, Segment
from dispute_platform.sandbox.common import (
    ACCOUNT_COUNT,
    ANNUAL_SHARE,
    COUNTRIES,
    DISPUTE_COUNT,
    ENTERPRISE_PREFIXES,
    ENTERPRISE_TRADES,
    FIRST_NAMES,
    HISTORY_MONTHS,
    INCIDENT_SUMMARIES,
    LAST_NAMES,
    LEGAL_SUFFIXES,
    MAINTENANCE_SUMMARIES,
    MID_PREFIXES,
    MID_TRADES,
    ONE_TIME_ITEMS,
    ONE_TIME_SHARE,
    PLAN_MIX,
    RANDOM_INCIDENT_COUNT,
    RANDOM_INCIDENTS_BEFORE,
    REFUND_COUNT,
    SEGMENT_COUNTS,
    SMB_PREFIXES,
    SMB_TRADES,
    STANDING_COUNTS,
    TEST_CARDS,
    US_AREA_CODES,
    WORLD_TODAY,
    D,
    add_months,
    ascii_slug,
    at,
    plan_id,
)
from dispute_platform.sandbox.draft import Profile, WorldDraft


def make_company_name(rng: random.Random, segment: Segment, taken: set[str]) -> str:
    prefixes, trades, suffixes = {
        Segment.SMB: (SMB_PREFIXES, SMB_TRADES, ["LLC", "", "Co.", "Ltd"]),
        Segment.MID_MARKET: (MID_PREFIXES, MID_TRADES, ["Inc.", "LLC", "Ltd"]),
        Segment.ENTERPRISE: (ENTERPRISE_PREFIXES, ENTERPRISE_TRADES, ["", "plc", "Inc."]),
    }[segment]
    while True:
        name = " ".join(p for p in (rng.choice(prefixes), rng.choice(trades), rng.choice(suffixes)) if p)
        if name not in taken:
            taken.add(name)
            return name


def make_phone(rng: random.Random, country: str) -> str:
    if country in ("US", "CA"):
        area, line = rng.choice(US_AREA_CODES if country == "US" else ["416", "604", "514"]), rng.randint(100, 199)
        return rng.choice(
            [f"+1 ({area}) 555-0{line - 100:03d}", f"{area}-555-0{line - 100:03d}", f"({area}) 555-0{line - 100:03d}"]
        )
    if country == "GB":
        return f"+44 20 7946 0{rng.randint(0, 999):03d}"
    return f"+61 2 5550 {rng.randint(0, 9999):04d}"


def make_accounts(w: WorldDraft) -> None:
    """Identities, segments, standing and each account's billing profile (plan, start, card)."""
    rng = w.rng
    segments = [s for s, n in SEGMENT_COUNTS.items() for _ in range(n)]
    assert len(segments) == ACCOUNT_COUNT
    rng.shuffle(segments)
    taken: set[str] = set()
    for number, segment in enumerate(segments, start=1):
        cid = f"CUST-{number:05d}"
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company = make_company_name(rng, segment, taken)
        country = rng.choices([c for c, _ in COUNTRIES], [wt for _, wt in COUNTRIES])[0]
        local = rng.choice(
            [
                f"{ascii_slug(first)}.{ascii_slug(last)}",
                f"{ascii_slug(first)[0]}{ascii_slug(last)}",
                "billing",
                "accounts",
            ]
        )
        trade_name = company.rsplit(" ", 1)[0] if company.endswith(LEGAL_SUFFIXES) else company
        email = f"{local}@{ascii_slug(trade_name)}.example"
        months = rng.randint(*HISTORY_MONTHS)
        started = add_months(date(WORLD_TODAY.year, WORLD_TODAY.month, rng.randint(1, 28)), -months)
        key = rng.choices(list(PLAN_MIX[segment]), list(PLAN_MIX[segment].values()))[0]
        period = "annual" if rng.random() < ANNUAL_SHARE[segment] else "monthly"
        w.accounts.append(
            Account(
                customer_id=cid,
                name=company,
                email=email,
                phone=make_phone(rng, country),
                segment=segment,
                country=country,
                created_at=started - timedelta(days=rng.randint(0, 30)),
            )
        )
        w.profiles[cid] = Profile(plan=w.plans[plan_id(key, period)], started_at=started, card=rng.choice(TEST_CARDS))
    # Standing: most accounts are active and in good standing. Drawn from the end of the list so
    # the first CUST ids are not all special.
    ordered = list(reversed(w.accounts))
    rng.shuffle(ordered)
    cursor = 0
    for kind, count in STANDING_COUNTS.items():
        for account in ordered[cursor : cursor + count]:
            profile = w.profiles[account.customer_id]
            if kind == "past_due":
                account.standing, profile.unpaid_last = "past_due", 1
            elif kind == "collections":
                account.standing, profile.unpaid_last = "collections", 2
            elif kind == "suspended":
                account.status, account.standing, profile.unpaid_last = "suspended", "collections", 3
            else:
                account.status = "closed"
                profile.closed_after = WORLD_TODAY - timedelta(days=rng.randint(60, 200))
        cursor += count


def bill_unclaimed_accounts(w: WorldDraft) -> None:
    """The random history: subscriptions with the odd declined card and late fee, usage on
    Business/Enterprise monthly plans, a few one-time purchases."""
    rng = w.rng
    for account in w.accounts:
        if account.customer_id in w.claimed:
            continue
        w.bill_subscription(account)
        if rng.random() < ONE_TIME_SHARE:
            item = rng.choice(["keys", "keys", "workshop", "training", "migration", "support"])
            profile = w.profiles[account.customer_id]
            last = profile.closed_after or WORLD_TODAY - timedelta(days=2)
            day = profile.started_at + timedelta(days=rng.randint(5, max(6, (last - profile.started_at).days)))
            age = (WORLD_TODAY - day).days
            physical = ONE_TIME_ITEMS[item][2]
            fulfillment = "delivered" if age > 12 or not physical else rng.choice(["pending", "shipped"])
            w.one_time(
                account.customer_id,
                item,
                at(day, rng.randint(13, 21), rng.randrange(60)),
                fulfillment,
                quantity=rng.randint(2, 10) if item == "keys" else 1,
            )


def add_random_refunds_and_disputes(w: WorldDraft) -> None:
    """Earlier refunds (goodwill, downgrades, double-billing fixed by support) and chargebacks, on
    accounts no scenario uses so that no open case depends on them by accident."""
    rng = w.rng
    pool = [
        c
        for c in w.charges
        if c.customer_id not in w.claimed and c.status == "succeeded" and c.created_at.date() < WORLD_TODAY - timedelta(days=10)
    ]
    pool.sort(key=lambda c: c.charge_id)
    for charge in rng.sample(pool, REFUND_COUNT):
        when = charge.created_at + timedelta(days=rng.randint(1, 9), hours=rng.randint(1, 8))
        if rng.random() < 0.5:
            w.refund(charge, charge.amount, when, rng.choice(["requested_by_customer", "service_not_used", "downgrade"]))
        else:
            share = D(rng.choice(["0.10", "0.25", "0.50"]))
            w.refund(
                charge,
                cents(charge.amount * share),
                when,
                rng.choice(["goodwill", "outage_credit_as_refund", "price_adjustment"]),
            )
    refunded = {r.charge_id for r in w.refunds}
    # Chargebacks arrive 10-60 days after the charge; only charges old enough for that.
    old_enough = [c for c in pool if c.charge_id not in refunded and c.created_at.date() < WORLD_TODAY - timedelta(days=61)]
    for charge in rng.sample(old_enough, DISPUTE_COUNT):
        w.disputes.append(
            PriorDispute(
                dispute_id=w.new_id("dp_"),
                charge_id=charge.charge_id,
                amount=charge.amount,
                created_at=charge.created_at + timedelta(days=rng.randint(10, 60)),
                reason=rng.choice(["fraudulent", "duplicate", "subscription_canceled", "product_not_received", "unrecognized"]),
                status=rng.choice(["won", "won", "lost", "withdrawn"]),
            )
        )


def add_random_incidents(w: WorldDraft) -> None:
    """Older status-page incidents: segment-wide or for a handful of customers; some scheduled."""
    rng = w.rng
    first = date(2025, 6, 1)
    span = (RANDOM_INCIDENTS_BEFORE - first).days - 3
    for _ in range(RANDOM_INCIDENT_COUNT):
        day = first + timedelta(days=rng.randrange(span))
        if rng.random() < 0.25:
            w.incident(
                at(day, 2, 0),
                rng.choice([1, 2, 3, 4]),
                rng.choice(MAINTENANCE_SUMMARIES),
                segments=tuple(Segment),
                scheduled=True,
            )
            continue
        hours = rng.choice([0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 6, 9, 14, 26])
        if rng.random() < 0.5:
            segments = tuple(rng.sample(list(Segment), rng.randint(1, 3)))
            w.incident(
                at(day, rng.randint(0, 22), rng.choice([0, 15, 30, 45])),
                hours,
                rng.choice(INCIDENT_SUMMARIES),
                segments=segments,
            )
        else:
            customers = tuple(sorted(a.customer_id for a in rng.sample(w.accounts, rng.randint(1, 6))))
            w.incident(
                at(day, rng.randint(0, 22), rng.choice([0, 15, 30, 45])),
                hours,
                rng.choice(INCIDENT_SUMMARIES) + " (single cluster)",
                customers=customers,
            )
