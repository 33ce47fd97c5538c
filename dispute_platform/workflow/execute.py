"""Execute what a reviewer decided. Money moves at most once:

1. the execution row is keyed on an idempotency key derived from the dispute and the decision,
   and a dispute with a succeeded execution is never executed again;
2. the same key goes to the payment or billing provider, which answers a repeated key with the
   original refund or credit (so a crash between the provider call and our write is harmless);
3. the amount is checked again against what is still refundable right before the call;
4. the proposal must have passed every cap check (evaluated here if the checks have not run).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from dispute_platform.domain.caps import CAP_NAMES, CapLimits
from dispute_platform.domain.models import Action
from dispute_platform.domain.notifications import customer_notice
from dispute_platform.domain.states import EXECUTION_MAY_RUN, Status
from dispute_platform.resources.email import EmailSender
from dispute_platform.resources.providers import (
    BillingProvider,
    CRMProvider,
    MoneyReceipt,
    PaymentsProvider,
    RefundRefused,
)
from dispute_platform.store import repo
from dispute_platform.store.db import Database
from dispute_platform.workflow.caps import evaluate_stored

log = logging.getLogger(__name__)


class ExecutionRefused(Exception):
    """The dispute may not be executed (not decided, over a cap, unchecked). Not retried."""


def idempotency_key(case_id: str, proposal_version: int, decision_id: int) -> str:
    return f"dispute-{case_id}-v{proposal_version}-d{decision_id}"


@dataclass(frozen=True)
class ExecutionResult:
    case_id: str
    status: str  # executed | rejected | already_done | failed
    action: str
    amount: Decimal
    reference: str | None = None
    replayed: bool = False
    detail: str = ""


def _plan(cur, case_id: str) -> dict:
    """Everything execution needs, read and checked under the dispute's lock."""
    repo.lock_case(cur, case_id)
    state = repo.workflow_state(cur, case_id)
    if state is None:
        raise ExecutionRefused(f"no dispute {case_id}")
    done = repo.succeeded_execution(cur, case_id)
    if done is not None:
        return {"state": state, "done": done}
    if state["status"] not in EXECUTION_MAY_RUN:
        raise ExecutionRefused(f"dispute {case_id} is {state['status']}: nothing decided to execute")
    version = state["proposal_version"]
    checks = repo.check_results(cur, case_id, version)
    if any(name not in checks for name in CAP_NAMES):
        return {"state": state, "done": None, "unchecked": True}
    failed = [name for name, row in checks.items() if not row["passed"]]
    if failed:
        raise ExecutionRefused(f"proposal v{version} of {case_id} cannot be executed: failed cap checks {failed}")
    decisions = repo.decisions_for(cur, case_id, version)
    if not decisions:
        raise ExecutionRefused(f"dispute {case_id} has no decision for proposal v{version}")
    return {"state": state, "done": None, "decision": decisions[-1], "version": version}


def execute_decision(
    db: Database,
    case_id: str,
    *,
    payments: PaymentsProvider,
    billing: BillingProvider,
    crm: CRMProvider,
    email: EmailSender,
    run_id: str | None,
    caps: CapLimits,
) -> ExecutionResult:
    plan = db.transact(lambda cur: _plan(cur, case_id))
    if plan.get("unchecked"):
        # The checks run right after the proposal, in its run; a fast reviewer can be quicker.
        # Evaluate them now rather than trust an unchecked proposal (or strand the dispute).
        evaluate_stored(db, [case_id], caps, run_id)
        plan = db.transact(lambda cur: _plan(cur, case_id))
        if plan.get("unchecked"):
            raise ExecutionRefused(f"{case_id}: the cap checks could not be evaluated")
    state = plan["state"]
    if plan["done"] is not None:
        done = plan["done"]
        return ExecutionResult(case_id, "already_done", done["action"], done["amount"], done["provider_ref"], True)

    decision, version = plan["decision"], plan["version"]
    key = idempotency_key(case_id, version, decision["id"])
    action, amount = decision["effective_action"], decision["effective_amount"]
    currency = state["currency"] or "USD"
    validation = state["validation"] or {}
    charge_id = validation.get("disputed_charge_id")

    if decision["decision"] == "rejected" or action == "none":
        reason = decision["comments"] or "the reviewer rejected the proposal"

        def record_noop(cur) -> None:
            repo.start_execution(cur, case_id=case_id, version=version, decision_id=decision["id"], key=key,
                                 action="none", amount=Decimal("0"), currency=currency)  # fmt: skip
            repo.finish_execution(cur, key, "noop")
            final = {"outcome": "rejected", "action": "none", "amount": "0", "reason": reason, "reviewer": decision["reviewer"]}
            repo.set_status(cur, case_id, Status.REJECTED, "executed_resolution", reason, final_resolution=final)
            repo.audit(cur, case_id, "executed_resolution", "rejected_noop", final, run_id=run_id)

        db.transact(record_noop)
        return ExecutionResult(case_id, "rejected", "none", Decimal("0"), detail=reason)

    db.transact(lambda cur: (
        repo.start_execution(cur, case_id=case_id, version=version, decision_id=decision["id"], key=key,
                             action=action, amount=amount, currency=currency),
        repo.set_status(cur, case_id, Status.EXECUTING, "executed_resolution"),
    ))  # fmt: skip

    receipt: MoneyReceipt | None = None
    try:
        if Action(action).is_refund:
            if not charge_id:
                raise RefundRefused("no disputed charge on record to refund")
            _recheck_refundable(payments, state["customer_id"], charge_id, amount, key)
            receipt = payments.refund(charge_id, amount, currency, key, f"dispute {case_id}")
        elif action == Action.CREDIT:
            receipt = billing.issue_credit(state["customer_id"], amount, currency, key, f"dispute {case_id}")
    except Exception as exc:  # every failure is recorded before it propagates
        error = f"{exc.__class__.__name__}: {exc}"
        db.transact(lambda cur: (
            repo.finish_execution(cur, key, "failed", error=error),
            repo.set_status(cur, case_id, Status.EXECUTION_FAILED, "executed_resolution", error),
            repo.audit(cur, case_id, "executed_resolution", "execution_failed", {"error": error, "key": key}, run_id=run_id),
        ))  # fmt: skip
        raise

    reference = receipt.reference if receipt else None
    final = {
        "outcome": "executed",
        "action": action,
        "amount": str(amount),
        "currency": currency,
        "reference": reference,
        "idempotency_key": key,
        "replayed": bool(receipt and receipt.replayed),
        "reviewers": (state["human_review_data"] or {}).get("reviewers", [decision["reviewer"]]),
        "comments": decision["comments"],
    }

    def record_success(cur) -> None:
        repo.finish_execution(cur, key, "succeeded", provider_ref=reference)
        repo.set_status(cur, case_id, Status.EXECUTED, "executed_resolution", final_resolution=final)
        repo.audit(cur, case_id, "executed_resolution", "executed", final, run_id=run_id)

    db.transact(record_success)
    _notify_customer(db, email, crm, state, action, amount, currency, decision, run_id)
    return ExecutionResult(case_id, "executed", action, amount, reference, bool(receipt and receipt.replayed))


def _recheck_refundable(payments: PaymentsProvider, customer_id: str, charge_id: str, amount: Decimal, key: str) -> None:
    """Fresh from the provider: is the amount still refundable? A refund already made with our
    own key (a crash after the provider call) is not counted against us: it will be replayed."""
    record = payments.fetch_payments(customer_id)
    if any(r.idempotency_key == key for r in record.refunds):
        return
    charge = next((c for c in record.charges if c.charge_id == charge_id), None)
    if charge is None:
        raise RefundRefused(f"charge {charge_id} is no longer on the customer's payment history")
    if amount > charge.refundable:
        raise RefundRefused(f"refund {amount} is above the {charge.refundable:.2f} still refundable on {charge_id}")


def _notify_customer(db, email, crm, state, action, amount, currency, decision, run_id) -> None:
    crm_data = state["crm_data"] or {}
    account = crm_data.get("account", {})
    to = account.get("email")
    reason = (state["resolution_proposal"] or {}).get("reasoning", "") if decision["decision"] == "approved" else decision["comments"]
    subject, body = customer_notice(
        case_id=state["case_id"],
        customer=account.get("name", "customer"),
        action=action,
        amount=amount,
        currency=currency,
        reason=reason.removeprefix("Rules engine (not a model): "),
    )
    outcome: dict[str, str] = {}
    try:
        if to:
            outcome["email"] = email.send([to], subject, body, reference=f"notice-{state['case_id']}")
        crm.record_outcome(state["case_id"], "Closed", f"{action} {amount} {currency}")
    except Exception as exc:  # noqa: BLE001 - the money moved; a failed notice is recorded, not fatal
        outcome["error"] = f"{exc.__class__.__name__}: {exc}"
        log.warning("customer notice for %s failed: %s", state["case_id"], outcome["error"])
    db.transact(lambda cur: repo.audit(cur, state["case_id"], "executed_resolution", "customer_notified", outcome, run_id=run_id))
