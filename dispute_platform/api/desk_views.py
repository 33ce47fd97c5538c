"""What the review desk shows: the queue and one dispute's page, assembled from Postgres rows and
the policy documents. No HTTP here; `desk.py` renders these with the templates."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from dispute_platform.domain.masking import mask_pii
from dispute_platform.domain.models import Action
from dispute_platform.domain.money import above_threshold
from dispute_platform.domain.states import AWAITING_DECISION, Status
from dispute_platform.resources.limits import Limits
from dispute_platform.store import desk as desk_store
from dispute_platform.store import repo
from dispute_platform.store.executions import executions_for
from dispute_platform.store.reviewers import decisions_for
from dispute_platform.store.sessions import DeskReviewer

CAP_LABELS = {
    "input_tokens_within_cap": "input tokens",
    "output_tokens_within_cap": "output tokens",
    "cost_within_cap": "LLM cost (USD)",
    "amount_within_refundable": "amount vs refundable",
}


@dataclass(frozen=True)
class PolicySection:
    citation: str
    title: str
    text: str
    found: bool = True


class PolicyLibrary:
    """Cited sections ("POL-003 §2") with their text, read from policies/*.docx by the same parser
    that fills Chroma's `company_policies` collection (`load_policy_chunks`): one chunk per
    numbered section, so the text shown is the text the proposal was built on. Reread when a
    file changes; no Chroma client in the endpoint's process."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._by_citation: dict[str, PolicySection] = {}

    def _load(self) -> dict[str, PolicySection]:
        from dispute_platform.domain.policies import load_policy_chunks

        files = sorted(self.directory.glob("*.docx"))
        stamp = tuple((p.name, p.stat().st_mtime_ns) for p in files)
        with self._lock:
            if stamp != self._stamp:
                chunks = load_policy_chunks(self.directory)
                self._by_citation = {
                    c.citation: PolicySection(c.citation, f"{c.title}: {c.section_title}", c.text) for c in chunks
                }
                self._stamp = stamp
            return self._by_citation

    def sections(self, citations: list[str]) -> list[PolicySection]:
        try:
            known = self._load()
        except (OSError, ValueError) as exc:
            return [PolicySection(c, "policy text unavailable", f"{exc}", found=False) for c in citations]
        return [
            known.get(c) or PolicySection(c, "not in the current policies", "This section is no longer in policies/.", False)
            for c in citations
        ]


def _plain(value: Decimal) -> str:
    """A figure as people write it: 0.001, 2075, 0.00031 (never 1E+3 or 0E-8)."""
    return f"{value.normalize():f}"


@dataclass
class FourEyes:
    threshold: Decimal
    needed: bool  # the amount on the table is above the threshold
    first: dict | None  # the first approval of the current version, when one waits for a second
    you_decided: bool
    note: str


@dataclass
class DisputeView:
    case_id: str
    state: dict
    proposal: dict | None
    customer: dict
    description: str
    disputed_charge: dict | None
    related_charges: list[dict]
    refunds: list[dict]
    validation: dict
    policies: list[PolicySection]
    similar: list[dict]
    flags: list[str]
    caps: list[dict]
    decisions: list[dict]
    executions: list[dict]
    audit: list[dict]
    four_eyes: FourEyes
    can_decide: bool
    actions: list[str] = field(default_factory=lambda: [a.value for a in Action if a != Action.ESCALATE])


def _four_eyes(state: dict, proposal: dict | None, decisions: list[dict], limits: Limits, reviewer: DeskReviewer) -> FourEyes:
    threshold = limits.escalation_threshold_usd
    version = state["proposal_version"]
    current = [d for d in decisions if d["proposal_version"] == version]
    first = current[0] if state["status"] == Status.AWAITING_SECOND_REVIEW and current else None
    you = any(d["reviewer_id"] == reviewer.id for d in current)
    amount = first["effective_amount"] if first else (proposal["amount"] if proposal else Decimal("0"))
    needed = above_threshold(amount, state["currency"] or "USD", threshold, limits.usd_rates)
    if first:
        note = (
            f"First approval by {first['reviewer']} ({first['effective_action']} {first['effective_amount']}). "
            + ("You made it: a second, different reviewer must confirm." if you
               else "A second, different reviewer must approve or reject it.")
        )  # fmt: skip
    elif needed:
        note = f"Above {threshold} USD in value: an approval needs a second, different reviewer (four-eyes)."
    else:
        note = f"At or below {threshold} USD in value: one reviewer decides (a modified amount above it needs two)."
    return FourEyes(threshold, needed, first, you, note)


def dispute_view(cur, case_id: str, *, reviewer: DeskReviewer, limits: Limits, policies: PolicyLibrary) -> DisputeView | None:
    state = repo.workflow_state(cur, case_id)
    if state is None:
        return None
    proposal = repo.latest_proposal(cur, case_id)
    crm = state["crm_data"] or {}
    payments = state["payment_data"] or {}
    validation = state["validation"] or {}
    charges = payments.get("charges") or []
    disputed_id = validation.get("disputed_charge_id") or (crm.get("case") or {}).get("charge_id")
    relevant = [cid for cid in payments.get("relevant_charge_ids") or [] if cid != disputed_id]
    by_id = {c["charge_id"]: c for c in charges}
    decisions = decisions_for(cur, case_id)
    body = (proposal or {}).get("proposal") or {}
    similar_ids = body.get("similar_cases") or []
    past = desk_store.past_cases(cur, similar_ids)
    caps = []
    if proposal is not None:
        for name, row in sorted(repo.check_results(cur, case_id, proposal["version"]).items()):
            caps.append({"name": name, "label": CAP_LABELS.get(name, name), "passed": row["passed"],
                         "figure": _plain(row["figure"]), "cap": _plain(row["cap"])})  # fmt: skip
    account = crm.get("account") or {}
    return DisputeView(
        case_id=case_id,
        state=state,
        proposal=proposal,
        customer={
            "name": account.get("name") or "-",
            "customer_id": state["customer_id"] or account.get("customer_id") or "-",
            "segment": state["segment"] or account.get("segment") or "-",
            "status": account.get("status", "-"),
            "standing": account.get("standing", "-"),
            "country": account.get("country", "-"),
            "since": account.get("created_at", "-"),
        },
        description=mask_pii((crm.get("case") or {}).get("description", "")),
        disputed_charge=by_id.get(disputed_id) if disputed_id else None,
        related_charges=[by_id[cid] for cid in relevant if cid in by_id],
        refunds=payments.get("refunds") or [],
        validation=validation,
        policies=policies.sections(body.get("cited_policies") or []),
        similar=[past.get(cid) or {"case_id": cid, "summary": "(no record of it in Postgres)"} for cid in similar_ids],
        flags=list((proposal or {}).get("flags") or []),
        caps=caps,
        decisions=decisions,
        executions=executions_for(cur, case_id),
        audit=repo.audit_trail(cur, case_id),
        four_eyes=_four_eyes(state, proposal, decisions, limits, reviewer),
        can_decide=state["status"] in AWAITING_DECISION and proposal is not None,
    )


def queue_view(cur, *, sla_hours: float, sort: str, order: str) -> list[dict[str, Any]]:
    rows = desk_store.review_queue(cur, sla_hours=sla_hours, sort=sort, order=order)  # type: ignore[arg-type]
    for row in rows:
        left = float(row["sla_hours_left"])
        row["sla_text"] = f"overdue {-left:.1f} h" if left < 0 else f"due in {left:.1f} h"
        row["age_text"] = f"{float(row['age_hours']):.1f} h"
        # A prompt section trimmed to its budget is routine; the dispute's page lists every flag.
        row["flags"] = [f for f in row["flags"] or [] if not str(f).startswith("trimmed:")]
    return rows
