"""The sandbox world: a deterministic company (customers, plans, invoices, charges, outages and
open cases) that the sandbox CRM, billing and payment providers serve.

It is a documented JSON file (docs/sandbox.md); `SANDBOX_DATA=path` swaps in another, so a test or
a user can build their own world. Refunds and credits made by the platform are not written here:
the sandbox keeps them in its own state (see resources/sandbox.py), like a real provider would.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from dispute_platform.domain.models import (
    Account,
    Case,
    Charge,
    Incident,
    Invoice,
    Plan,
    PriorDispute,
    Refund,
    Segment,
    Subscription,
)

BUNDLED_WORLD = Path(__file__).resolve().parent.parent / "data" / "sandbox_world.json"
SCHEMA_VERSION = 1


class _CustomerOwned(Protocol):
    @property
    def customer_id(self) -> str: ...


_Owned = TypeVar("_Owned", bound=_CustomerOwned)


class WorldSubscription(BaseModel):
    subscription_id: str
    customer_id: str
    plan_id: str
    status: Literal["active", "cancelled", "past_due"] = "active"
    started_at: date
    current_period_start: date
    current_period_end: date
    cancel_requested_at: datetime | None = None


class WorldIncident(Incident):
    affected_segments: list[Segment] = Field(default_factory=list)
    affected_customer_ids: list[str] = Field(default_factory=list)

    def affects(self, account: Account) -> bool:
        return account.segment in self.affected_segments or account.customer_id in self.affected_customer_ids


class SandboxWorld(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    company: str = "Brightwave Software, Inc."
    description: str = ""
    plans: list[Plan]
    accounts: list[Account]
    subscriptions: list[WorldSubscription]
    invoices: list[Invoice]
    charges: list[Charge]
    refunds: list[Refund] = Field(default_factory=list)
    disputes: list[PriorDispute] = Field(default_factory=list)
    incidents: list[WorldIncident] = Field(default_factory=list)
    cases: list[Case]
    # Dispute-event bodies (JSON objects) that `dispute-platform run` publishes on a fresh queue.
    sample_events: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path | str | None = None) -> SandboxWorld:
        path = Path(path) if path else BUNDLED_WORLD
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"sandbox world {path} does not exist (SANDBOX_DATA names it)") from exc
        except json.JSONDecodeError as exc:
            raise ValueError(f"sandbox world {path} is not valid JSON: {exc}") from exc
        if raw.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"sandbox world {path} has schema_version {raw.get('schema_version')}, expected {SCHEMA_VERSION}")
        return cls.model_validate(raw)

    # Indexes, built once per world; the world is frozen.
    @cached_property
    def plans_by_id(self) -> dict[str, Plan]:
        return {p.plan_id: p for p in self.plans}

    @cached_property
    def accounts_by_id(self) -> dict[str, Account]:
        return {a.customer_id: a for a in self.accounts}

    @cached_property
    def cases_by_id(self) -> dict[str, Case]:
        return {c.case_id: c for c in self.cases}

    @cached_property
    def charges_by_id(self) -> dict[str, Charge]:
        return {c.charge_id: c for c in self.charges}

    def _by_customer(self, items: list[_Owned]) -> dict[str, list[_Owned]]:
        grouped: dict[str, list[_Owned]] = {}
        for item in items:
            grouped.setdefault(item.customer_id, []).append(item)
        return grouped

    @cached_property
    def charges_by_customer(self) -> dict[str, list[Charge]]:
        return self._by_customer(self.charges)

    @cached_property
    def invoices_by_customer(self) -> dict[str, list[Invoice]]:
        return self._by_customer(self.invoices)

    @cached_property
    def subscriptions_by_customer(self) -> dict[str, list[WorldSubscription]]:
        return self._by_customer(self.subscriptions)

    def subscription_for(self, customer_id: str) -> Subscription | None:
        subs = self.subscriptions_by_customer.get(customer_id, [])
        if not subs:
            return None
        sub = max(subs, key=lambda s: s.current_period_start)
        return Subscription(
            subscription_id=sub.subscription_id,
            customer_id=sub.customer_id,
            plan=self.plans_by_id[sub.plan_id],
            status=sub.status,
            started_at=sub.started_at,
            current_period_start=sub.current_period_start,
            current_period_end=sub.current_period_end,
            cancel_requested_at=sub.cancel_requested_at,
        )

    def incidents_for(self, account: Account) -> list[Incident]:
        return [Incident(**i.model_dump(include=set(Incident.model_fields))) for i in self.incidents if i.affects(account)]

    def refunds_for(self, charge_ids: set[str]) -> list[Refund]:
        return [r for r in self.refunds if r.charge_id in charge_ids]

    def disputes_for(self, charge_ids: set[str]) -> list[PriorDispute]:
        return [d for d in self.disputes if d.charge_id in charge_ids]
