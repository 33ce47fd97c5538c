"""The platform's data contracts: pydantic models shared by every layer.

Money is `Decimal` everywhere (never float) and is serialised as a string in JSON so that
nothing is rounded on its way through Postgres JSONB or an SQS body.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
)

CASE_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_CASE_ID_RE = re.compile(CASE_ID_PATTERN)

# Dispute bodies larger than this are rejected before parsing: real events are a few hundred
# bytes, and SQS allows 256 KB, which is room for abuse, not for disputes.
MAX_EVENT_BODY_BYTES = 64 * 1024
MAX_DESCRIPTION_CHARS = 20_000
# No single dispute in this business is worth more than this; larger figures are typos or attacks.
MAX_EVENT_AMOUNT = Decimal("1000000")

# C0 control characters except tab, newline and carriage return. Postgres refuses NUL in text,
# and the others only ever arrive as corruption or as attempts to confuse a log or a prompt.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class DisputeType(StrEnum):
    DUPLICATE_CHARGE = "duplicate_charge"
    SERVICE_OUTAGE = "service_outage"
    CANCELLATION_REFUND = "cancellation_refund"
    UNAUTHORIZED = "unauthorized"
    WRONG_AMOUNT = "wrong_amount"
    LATE_FEE = "late_fee"
    PRODUCT_NOT_RECEIVED = "product_not_received"
    GENERAL = "general"


class Action(StrEnum):
    FULL_REFUND = "full_refund"
    PARTIAL_REFUND = "partial_refund"
    CREDIT = "credit"
    DENY = "deny"
    ESCALATE = "escalate"

    @property
    def moves_money(self) -> bool:
        return self in (Action.FULL_REFUND, Action.PARTIAL_REFUND, Action.CREDIT)

    @property
    def is_refund(self) -> bool:
        return self in (Action.FULL_REFUND, Action.PARTIAL_REFUND)


class Segment(StrEnum):
    SMB = "smb"
    MID_MARKET = "mid_market"
    ENTERPRISE = "enterprise"


def strip_control_chars(value: str) -> str:
    return _CONTROL_CHARS.sub("", value)


def is_valid_case_id(value: object) -> bool:
    return isinstance(value, str) and _CASE_ID_RE.fullmatch(value) is not None


# Half of a UTF-16 pair, as a JSON "\\ud800" escape decodes: no UTF-8 text (Postgres, a prompt)
# can hold it, and this validator runs before pydantic's own string check would refuse it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if LONE_SURROGATE.search(value):
        raise ValueError("text holds an unpaired UTF-16 surrogate escape, which is not valid Unicode")
    return strip_control_chars(value)


def _money_from_json_number(value: Any) -> Any:
    """Amounts must arrive as JSON numbers: "fifty" or "50" as text is a producer bug worth a
    rejection with a reason, not a silent coercion."""
    if isinstance(value, bool) or isinstance(value, str):
        raise ValueError("amount must be a JSON number, not text or a boolean")
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _two_decimals(value: Decimal) -> Decimal:
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("amount has more than 2 decimal places")
    return value


CaseId = Annotated[str, StringConstraints(pattern=CASE_ID_PATTERN)]
CleanText = Annotated[str, BeforeValidator(_clean_text)]
Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2)]
EventAmount = Annotated[
    Decimal,
    BeforeValidator(_money_from_json_number),
    Field(ge=0, le=MAX_EVENT_AMOUNT),
    AfterValidator(_two_decimals),
    # Back out as a JSON number, as it came in (at most 2 decimals, so the float is exact enough).
    PlainSerializer(float, return_type=float, when_used="json"),
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class DisputeEvent(BaseModel):
    """An SQS dispute-events body. Only `case_id` is required: the CRM is the system of record,
    the other fields are the producer's hints and are compared against it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    case_id: CaseId
    customer_id: Annotated[CleanText, StringConstraints(min_length=1, max_length=64)] | None = None
    event_id: Annotated[CleanText, StringConstraints(min_length=1, max_length=128)] | None = None
    dispute_type: Annotated[CleanText, StringConstraints(max_length=64)] | None = None
    amount: EventAmount | None = None
    currency: Currency | None = None
    description: Annotated[CleanText, StringConstraints(max_length=MAX_DESCRIPTION_CHARS)] | None = None
    occurred_at: datetime | None = None

    @field_validator("currency", mode="before")
    @classmethod
    def _upper_currency(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def effective_event_id(self) -> str:
        """The producer's event id, or a digest of the event's content, so that the same
        event redelivered (or re-published without an id) is recognised as the same."""
        if self.event_id:
            return self.event_id
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# What the three source systems return (the sandbox world uses the same shapes).
# ---------------------------------------------------------------------------------------------


class Account(BaseModel):
    customer_id: str
    name: str
    email: str | None = None
    phone: str | None = None
    segment: Segment
    status: Literal["active", "suspended", "closed"] = "active"
    standing: Literal["good", "past_due", "collections"] = "good"
    country: str = "US"
    created_at: date


class Incident(BaseModel):
    """A status-page outage that affected the account."""

    incident_id: str
    started_at: datetime
    ended_at: datetime
    summary: str = ""
    scheduled_maintenance: bool = False

    @property
    def hours(self) -> Decimal:
        seconds = Decimal((self.ended_at - self.started_at).total_seconds())
        return (seconds / Decimal(3600)).quantize(Decimal("0.01"))


class Case(BaseModel):
    case_id: str
    customer_id: str
    dispute_type: str
    amount: Money
    currency: Currency = "USD"
    description: str = ""
    subject: str = ""
    opened_at: datetime
    charge_id: str | None = None
    status: str = "open"
    origin: str = "web"


class CrmRecord(BaseModel):
    case: Case
    account: Account
    incidents: list[Incident] = Field(default_factory=list)


class Plan(BaseModel):
    plan_id: str
    name: str
    billing_period: Literal["monthly", "annual"]
    price: Money
    currency: Currency = "USD"

    @property
    def monthly_fee(self) -> Decimal:
        if self.billing_period == "annual":
            return (self.price / 12).quantize(Decimal("0.01"))
        return self.price


class Subscription(BaseModel):
    subscription_id: str
    customer_id: str
    plan: Plan
    status: Literal["active", "cancelled", "past_due"] = "active"
    started_at: date
    current_period_start: date
    current_period_end: date
    cancel_requested_at: datetime | None = None


class InvoiceLine(BaseModel):
    description: str
    amount: Money
    kind: Literal["subscription", "late_fee", "one_time", "usage", "adjustment"] = "subscription"


class Invoice(BaseModel):
    invoice_id: str
    customer_id: str
    subscription_id: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    issued_at: date
    amount: Money
    currency: Currency = "USD"
    status: Literal["paid", "open", "void", "uncollectible"] = "paid"
    lines: list[InvoiceLine] = Field(default_factory=list)


class BillingRecord(BaseModel):
    subscription: Subscription | None = None
    invoices: list[Invoice] = Field(default_factory=list)


class Charge(BaseModel):
    charge_id: str
    customer_id: str
    amount: Money
    currency: Currency = "USD"
    created_at: datetime
    status: Literal["succeeded", "failed", "pending"] = "succeeded"
    description: str = ""
    kind: Literal["subscription", "renewal", "late_fee", "one_time", "usage"] = "subscription"
    invoice_id: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    card_last4: str | None = None
    amount_refunded: Money = Decimal("0")
    fulfillment_status: Literal["not_applicable", "pending", "shipped", "delivered", "not_delivered"] = "not_applicable"

    @property
    def refundable(self) -> Decimal:
        if self.status != "succeeded":
            return Decimal("0")
        return max(Decimal("0"), self.amount - self.amount_refunded)


class Refund(BaseModel):
    refund_id: str
    charge_id: str
    amount: Money
    created_at: datetime
    reason: str = ""
    idempotency_key: str | None = None


class PriorDispute(BaseModel):
    dispute_id: str
    charge_id: str
    amount: Money
    created_at: datetime
    reason: str
    status: Literal["won", "lost", "open", "withdrawn"] = "won"


class PaymentRecord(BaseModel):
    charges: list[Charge] = Field(default_factory=list)
    refunds: list[Refund] = Field(default_factory=list)
    disputes: list[PriorDispute] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# What the platform derives.
# ---------------------------------------------------------------------------------------------


class ValidationIssue(BaseModel):
    code: str
    message: str


class ValidationVerdict(BaseModel):
    """Why a dispute may (or may not) go on to a proposal. `valid` is derived from `issues`."""

    issues: list[ValidationIssue] = Field(default_factory=list)
    dispute_type: str
    disputed_amount: Money
    billed_amount: Money | None = None
    refundable_amount: Money | None = None
    days_since_charge: int | None = None
    disputed_charge_id: str | None = None

    @property
    def valid(self) -> bool:
        return not self.issues

    @property
    def summary(self) -> str:
        return "valid" if self.valid else "; ".join(issue.message for issue in self.issues)


class EnrichedContext(BaseModel):
    """Everything a proposal is allowed to see about one dispute."""

    case_id: str
    event: DisputeEvent
    crm: CrmRecord
    billing: BillingRecord
    payments: PaymentRecord
    relevant_charges: list[Charge]
    verdict: ValidationVerdict

    @property
    def disputed_charge(self) -> Charge | None:
        charge_id = self.verdict.disputed_charge_id
        return next((c for c in self.payments.charges if c.charge_id == charge_id), None)


class PolicyHit(BaseModel):
    """A policy section retrieved for a dispute, with its similarity in [0, 1]."""

    citation: str  # "POL-003 §2"
    policy_id: str
    title: str
    category: str
    text: str
    score: float = Field(ge=0, le=1)


class SimilarCase(BaseModel):
    """A past resolved dispute retrieved for a new one."""

    case_id: str
    dispute_type: str
    segment: str | None = None
    amount: Money | None = None
    action: str
    resolved_amount: Money | None = None
    summary: str
    score: float = Field(ge=0, le=1)
    source: str = "seed"


# What determined a proposal's action: the policy rules deciding from the records, the outcomes
# of similar past cases, a language model, or nothing (an escalation for want of a decision, a
# failed model call, or a proposal stored before this field existed).
ProposalBasis = Literal["policy", "precedent", "model", "none"]


class ResolutionProposal(BaseModel):
    """What a provider proposes, after the guardrails have had their say."""

    action: Action
    amount: Money = Decimal("0")
    currency: Currency = "USD"
    # Calibrated (the probability the outcome is right, learnt from history) when `calibration`
    # names the fit that was applied; otherwise the provider's own figure, kept in `raw_confidence`.
    confidence: float = Field(ge=0, le=1)
    basis: ProposalBasis = "none"
    raw_confidence: float | None = Field(default=None, ge=0, le=1)
    calibration: str | None = Field(default=None, description="Id of the calibration applied; None: uncalibrated.")
    reasoning: str
    cited_policies: list[str] = Field(default_factory=list)
    similar_cases: list[str] = Field(default_factory=list)
    model: str
    provider: str
    prompt_version: str
    input_tokens: int = Field(ge=0, default=0)  # billed over all requests (a re-ask sends the prompt again)
    output_tokens: int = Field(ge=0, default=0)
    requests: int = Field(
        ge=0,
        default=1,
        description="Model requests the provider may bill: answered ones and those sent but never answered "
        "(timeouts); not refused (4xx/5xx) or undelivered ones. 0 for the rules engine.",
    )
    cost_usd: Decimal = Decimal("0")
    # The part of input_tokens / cost_usd that is an estimate: requests sent but never answered
    # (a timeout) may be billed, and their usage is unknown; their input is our own count of the
    # prompt, their output (unknown, at most the output cap) is not included.
    estimated_input_tokens: int = Field(ge=0, default=0)
    estimated_cost_usd: Decimal = Decimal("0")
    latency_ms: int = Field(ge=0, default=0)
    cache_hit: bool = False
    flags: list[str] = Field(default_factory=list)


class ModifiedResolution(BaseModel):
    action: Action
    amount: Money = Field(ge=0)
    # Control characters stripped like every other free text: Postgres JSONB refuses \u0000.
    reason: Annotated[CleanText, StringConstraints(max_length=2000)] = ""


class ReviewDecision(BaseModel):
    decision: Literal["approved", "rejected", "modified"]
    reviewer: str
    comments: Annotated[str, StringConstraints(max_length=5000)] = ""
    modified_resolution: ModifiedResolution | None = None
    proposal_version: int = Field(ge=1)
