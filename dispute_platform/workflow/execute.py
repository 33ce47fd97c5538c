"""Execute what a reviewer decided. The money guarantees, and where each one is kept:

1. One movement per dispute. The database allows one started, succeeded or no-op execution per
   dispute (a partial unique index); every attempt at a movement reuses its row and its
   idempotency key; a recorded outcome is never overwritten and no execution is deleted (a
   trigger). A movement the provider refused is `failed`; only then may a later one start.
2. One runner at a time. An execution holds a session lock on the dispute for its whole span
   (a dedicated connection: a crashed runner's lock goes with its connection), so a second run
   of the same partition waits, then finds the outcome and does nothing.
3. Reconciled before every provider call. The provider is asked what already exists for the
   dispute (refunds on the charge, credits on the account, carrying our case id); a receipt found
   is the result, never a reason to call again. Providers forget idempotency keys after about a
   day, so keys are never relied on alone.
4. An unknown outcome (a timeout, a lost response, a crash) leaves the movement started; the
   next attempt reconciles first. Only a refusal the provider stated marks it failed.
5. The amount is re-checked right before the call against what is still refundable (refunds) or
   creditable (credits) on the charge, fresh from the provider, minus the credits and in-flight
   refunds of other disputes on the same charge (counted under the charge's lock).
6. Only a decided dispute whose current proposal passed every cap check executes (evaluated here
   when the checks have not run), and every status change is a compare-and-set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

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
from dispute_platform.store import executions as ledger
from dispute_platform.store import repo
from dispute_platform.store.db import Database
from dispute_platform.store.reviewers import decisions_for
from dispute_platform.store.transitions import lock_case, transition
from dispute_platform.workflow.caps import evaluate_stored

log = logging.getLogger(__name__)
STEP = "executed_resolution"


class ExecutionRefused(Exception):
    """The dispute may not be executed (not decided, over a cap, unchecked). Not retried."""


@dataclass(frozen=True)
class ExecutionResult:
    case_id: str
    status: str  # executed | rejected | already_done
    action: str
    amount: Decimal
    reference: str | None = None
    replayed: bool = False
    detail: str = ""


@dataclass
class _Plan:
    state: dict
    done: dict | None = None
    unchecked: bool = False
    rejected: dict | None = None  # the rejecting decision
    denied: dict | None = None  # an approved denial: nothing moves, the customer is told
    movement: dict | None = None  # the started execution row
    decision: dict | None = None
    committed: dict[str, Decimal] = field(default_factory=dict)


def _plan(cur, case_id: str, run_id: str | None) -> _Plan:
    """Read and check everything under the dispute's lock, and open (or resume) its movement."""
    lock_case(cur, case_id)
    state = repo.workflow_state(cur, case_id)
    if state is None:
        raise ExecutionRefused(f"no dispute {case_id}")
    live = ledger.live_execution(cur, case_id)
    if live is not None and live["status"] in ("succeeded", "noop"):
        return _Plan(state, done=live)
    if state["status"] not in EXECUTION_MAY_RUN:
        raise ExecutionRefused(f"dispute {case_id} is {state['status']}: nothing decided to execute")
    version = state["proposal_version"]
    checks = repo.check_results(cur, case_id, version)
    if any(name not in checks for name in CAP_NAMES):
        return _Plan(state, unchecked=True)
    failed = [name for name, row in checks.items() if not row["passed"]]
    if failed:
        raise ExecutionRefused(f"proposal v{version} of {case_id} cannot be executed: failed cap checks {failed}")
    decisions = decisions_for(cur, case_id, version)
    if not decisions:
        raise ExecutionRefused(f"dispute {case_id} has no decision for proposal v{version}")
    decision = decisions[-1]
    if state["status"] == Status.REJECTED:
        return _Plan(state, rejected=decision)

    if live is None:
        action = decision["effective_action"]
        if action == Action.DENY:
            return _Plan(state, denied=decision)
        if not Action(action).moves_money:
            raise ExecutionRefused(f"{case_id}: the decision ({action}) is not executable")
        charge_id = (state["validation"] or {}).get("disputed_charge_id")
        if charge_id:
            ledger.lock_charge(cur, charge_id)
        live = ledger.open_execution(
            cur, case_id=case_id, version=version, decision_id=decision["id"], action=action,
            amount=decision["effective_amount"], currency=state["currency"] or "USD", charge_id=charge_id,
            customer_id=state["customer_id"],
        )  # fmt: skip
    else:
        # A movement that was started before (a crash, a timeout, a lost response): the same row,
        # the same key, and its own action and amount, whatever was read since.
        if live["charge_id"]:
            ledger.lock_charge(cur, live["charge_id"])
        resumed = ledger.count_attempt(cur, live["id"])
        if resumed is None:  # read as started under this same lock: only a bug gets here
            raise ExecutionRefused(f"{case_id}: execution {live['idempotency_key']} is no longer started")
        live = resumed
    if not transition(cur, case_id, Status.EXECUTING, STEP, run_id=run_id):
        raise ExecutionRefused(f"dispute {case_id} moved on while execution was starting")
    committed = ledger.committed_on_charge(cur, live["charge_id"], excluding=live["id"]) if live["charge_id"] else {}
    return _Plan(state, movement=live, decision=decision, committed=committed)


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
    with db.session_lock("execute:" + case_id):
        plan = db.transact(lambda cur: _plan(cur, case_id, run_id))
        if plan.unchecked:
            # The checks run right after the proposal, in its run; a fast reviewer can be quicker.
            # Evaluate them now rather than trust an unchecked proposal (or strand the dispute).
            evaluate_stored(db, [case_id], caps, run_id)
            plan = db.transact(lambda cur: _plan(cur, case_id, run_id))
            if plan.unchecked:
                raise ExecutionRefused(f"{case_id}: the cap checks could not be evaluated")
        if plan.done is not None:
            done = plan.done
            return ExecutionResult(case_id, "already_done", done["action"], done["amount"], done["provider_ref"], True)
        if plan.rejected is not None:
            return _record_rejection(db, case_id, plan, run_id)
        if plan.denied is not None:
            return _record_denial(db, case_id, plan, run_id, crm=crm, email=email)
        return _move_money(db, case_id, plan, payments=payments, billing=billing, crm=crm, email=email, run_id=run_id)


ExecutionStep = Literal["done", "refused", "refused_by_provider", "failed"]


@dataclass(frozen=True)
class ExecutionOutcome:
    """What executed_resolution did for one dispute. done: `execution` says how (executed,
    rejected, already_done); refused: the dispute may not be executed (`error` says why; not
    retried); refused_by_provider: the provider refused the movement (final, recorded as
    execution_failed); failed: any other error (recorded as execution_failed; a retry reconciles)."""

    case_id: str
    result: ExecutionStep
    execution: ExecutionResult | None = None
    error: str | None = None


def execute_batch(
    db: Database,
    keys: Sequence[str],
    *,
    payments: PaymentsProvider,
    billing: BillingProvider,
    crm: CRMProvider,
    email: EmailSender,
    caps: CapLimits,
    executions_in_flight: int,
    run_id: str | None,
) -> list[ExecutionOutcome]:
    """`execute_decision` for each dispute of `keys`, `executions_in_flight` side by side: each
    one's money moves under its own guarded transitions and provider-side locks, whichever thread
    carries it (a review batch of hundreds would otherwise wait on one provider call at a time).
    One outcome per key, in order; no dispute's error is raised."""

    def attempt(key: str) -> ExecutionOutcome:
        try:
            done = execute_decision(db, key, payments=payments, billing=billing, crm=crm, email=email, run_id=run_id,
                                    caps=caps)  # fmt: skip
        except ExecutionRefused as refused:
            return ExecutionOutcome(key, "refused", error=str(refused))
        except RefundRefused as refused:
            return ExecutionOutcome(key, "refused_by_provider", error=f"refused by the provider: {refused}")
        except Exception as exc:  # noqa: BLE001 - recorded by execute_decision; the caller decides on a retry
            return ExecutionOutcome(key, "failed", error=f"{exc.__class__.__name__}: {exc}")
        return ExecutionOutcome(key, "done", execution=done)

    workers = max(1, min(executions_in_flight, len(keys)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="execute") as pool:
        return list(pool.map(attempt, keys))


def _record_rejection(db: Database, case_id: str, plan: _Plan, run_id: str | None) -> ExecutionResult:
    decision = plan.rejected
    assert decision is not None
    reason = decision["comments"] or "the reviewer rejected the proposal"
    currency = plan.state["currency"] or "USD"

    def record(cur) -> None:
        lock_case(cur, case_id)
        if ledger.live_execution(cur, case_id) is None:
            ledger.open_execution(
                cur, case_id=case_id, version=plan.state["proposal_version"], decision_id=decision["id"], action="none",
                amount=Decimal("0"), currency=currency, charge_id=None, customer_id=plan.state["customer_id"], status="noop",
            )  # fmt: skip
        final = {"outcome": "rejected", "action": "none", "amount": "0", "reason": reason, "reviewer": decision["reviewer"]}
        transition(cur, case_id, Status.REJECTED, STEP, reason, run_id=run_id, final_resolution=final)
        repo.audit(cur, case_id, STEP, "rejected_noop", final, run_id=run_id)

    db.transact(record)
    return ExecutionResult(case_id, "rejected", "none", Decimal("0"), detail=reason)


def _record_denial(db: Database, case_id: str, plan: _Plan, run_id: str | None, *, crm: CRMProvider,
                   email: EmailSender) -> ExecutionResult:  # fmt: skip
    """An approved denial: a recorded no-op movement (it also bars any later one), the dispute
    executed, the customer told."""
    decision, state = plan.denied, plan.state
    assert decision is not None
    currency = state["currency"] or "USD"
    final = {
        "outcome": "executed", "action": Action.DENY.value, "amount": "0", "currency": currency, "reference": None,
        "reviewers": (state["human_review_data"] or {}).get("reviewers", [decision["reviewer"]]),
        "comments": decision["comments"],
    }  # fmt: skip

    def record(cur) -> bool:
        lock_case(cur, case_id)
        if ledger.live_execution(cur, case_id) is not None:
            return False
        ledger.open_execution(
            cur, case_id=case_id, version=state["proposal_version"], decision_id=decision["id"], action=Action.DENY.value,
            amount=Decimal("0"), currency=currency, charge_id=None, customer_id=state["customer_id"], status="noop",
        )  # fmt: skip
        transition(cur, case_id, Status.EXECUTING, STEP, run_id=run_id)
        transition(cur, case_id, Status.EXECUTED, STEP, run_id=run_id, final_resolution=final)
        repo.audit(cur, case_id, STEP, "executed", final, run_id=run_id)
        return True

    if db.transact(record):
        _notify_customer(db, email, crm, state, Action.DENY.value, Decimal("0"), currency, decision, run_id)
    return ExecutionResult(case_id, "executed", Action.DENY.value, Decimal("0"), detail="denied: nothing moves")


def _move_money(
    db: Database,
    case_id: str,
    plan: _Plan,
    *,
    payments: PaymentsProvider,
    billing: BillingProvider,
    crm: CRMProvider,
    email: EmailSender,
    run_id: str | None,
) -> ExecutionResult:
    movement, state, decision = plan.movement, plan.state, plan.decision
    assert movement is not None and decision is not None
    key, action, amount = movement["idempotency_key"], Action(movement["action"]), movement["amount"]
    currency, charge_id = movement["currency"], movement["charge_id"]
    customer_id = movement["customer_id"] or state["customer_id"]
    reason = f"dispute {case_id}"
    try:
        receipt = _reconcile(case_id, action, charge_id, customer_id, payments, billing)
        reconciled = receipt is not None
        if receipt is None:
            _recheck_amount(case_id, action, amount, charge_id, customer_id, payments, plan.committed)
            if action.is_refund:
                assert charge_id is not None
                receipt = payments.refund(charge_id, amount, currency, key, reason, case_id=case_id)
            else:
                receipt = billing.issue_credit(customer_id, amount, currency, key, reason, case_id=case_id)
    except RefundRefused as exc:  # the provider said no: nothing moved, the movement is over
        error = f"{exc.__class__.__name__}: {exc}"
        db.transact(lambda cur: _record_failure(cur, case_id, movement["id"], key, error, run_id, refused=True))
        raise
    except Exception as exc:  # the outcome is unknown: the movement stays started, to be reconciled
        error = f"{exc.__class__.__name__}: {exc}"
        db.transact(lambda cur: _record_failure(cur, case_id, movement["id"], key, error, run_id, refused=False))
        raise

    final = {
        "outcome": "executed",
        "action": action.value,
        "amount": str(receipt.amount),
        "currency": receipt.currency,
        "reference": receipt.reference,
        "idempotency_key": key,
        "replayed": receipt.replayed,
        "reconciled": reconciled,
        "reviewers": (state["human_review_data"] or {}).get("reviewers", [decision["reviewer"]]),
        "comments": decision["comments"],
    }
    if receipt.amount != amount:
        final["amount_mismatch"] = f"decided {amount}, the provider holds {receipt.amount}"
        log.error("%s: the provider holds %s %s, the decision was %s", case_id, receipt.amount, receipt.currency, amount)

    def record_success(cur) -> bool:
        lock_case(cur, case_id)
        if not ledger.settle(cur, movement["id"], "succeeded", provider_ref=receipt.reference, reconciled=reconciled):
            return False
        transition(cur, case_id, Status.EXECUTED, STEP, run_id=run_id, final_resolution=final)
        repo.audit(cur, case_id, STEP, "executed", final, run_id=run_id)
        return True

    if not db.transact(record_success):
        done = db.transact(lambda cur: ledger.succeeded_execution(cur, case_id))
        ref = done["provider_ref"] if done else receipt.reference
        return ExecutionResult(case_id, "already_done", action.value, amount, ref, True)
    _notify_customer(db, email, crm, state, action.value, amount, currency, decision, run_id)
    return ExecutionResult(case_id, "executed", action.value, receipt.amount, receipt.reference, receipt.replayed or reconciled)


def _reconcile(
    case_id: str,
    action: Action,
    charge_id: str | None,
    customer_id: str,
    payments: PaymentsProvider,
    billing: BillingProvider,
) -> MoneyReceipt | None:
    """What the provider already holds for this dispute, whatever key it was made with."""
    if action.is_refund:
        found = payments.find_refunds(charge_id, case_id) if charge_id else []
    else:
        found = billing.find_credits(customer_id, case_id)
    if not found:
        return None
    if len(found) > 1:
        log.error("%s: the provider holds %d movements for this dispute: %s", case_id, len(found), [r.reference for r in found])
    return found[0].model_copy(update={"replayed": True})


def _recheck_amount(
    case_id: str,
    action: Action,
    amount: Decimal,
    charge_id: str | None,
    customer_id: str,
    payments: PaymentsProvider,
    committed: dict[str, Decimal],
) -> None:
    """Fresh from the provider: is the amount still refundable (or creditable) on the charge, once
    what other disputes committed on it is counted? A credit with no charge is bounded by the
    decision rules (the disputed amount)."""
    if charge_id is None:
        if action.is_refund:
            raise RefundRefused("no disputed charge on record to refund")
        return
    record = payments.fetch_payments(customer_id)
    charge = next((c for c in record.charges if c.charge_id == charge_id), None)
    if charge is None:
        raise RefundRefused(f"charge {charge_id} is no longer on the customer's payment history")
    others = committed.get("credits", Decimal("0")) + committed.get("refunds_in_flight", Decimal("0"))
    remaining = charge.refundable - others
    if amount > remaining:
        what = "refundable" if action.is_refund else "creditable"
        raise RefundRefused(
            f"{action.value} {amount} is above the {max(remaining, Decimal('0')):.2f} still {what} on {charge_id} "
            f"({charge.refundable:.2f} on the provider's books, {others:.2f} committed by other disputes)"
        )


def _record_failure(cur, case_id: str, execution_id: int, key: str, error: str, run_id: str | None, *, refused: bool) -> None:
    lock_case(cur, case_id)
    if refused:
        recorded = ledger.settle(cur, execution_id, "failed", error=error)
        reason = f"refused by the provider: {error}"
    else:
        ledger.note_error(cur, execution_id, error)
        recorded = True
        reason = f"outcome unknown ({error}); the next attempt asks the provider before it calls again"
    if recorded:
        transition(cur, case_id, Status.EXECUTION_FAILED, STEP, reason, run_id=run_id)
    repo.audit(cur, case_id, STEP, "execution_refused" if refused else "execution_failed",
               {"error": error, "key": key, "recorded": recorded}, run_id=run_id)  # fmt: skip


def _notify_customer(db, email, crm, state, action, amount, currency, decision, run_id) -> None:
    crm_data = state["crm_data"] or {}
    account = crm_data.get("account", {})
    to = account.get("email")
    reason = (
        (state["resolution_proposal"] or {}).get("reasoning", "") if decision["decision"] == "approved" else decision["comments"]
    )
    subject, body = customer_notice(
        case_id=state["case_id"],
        customer=account.get("name", "customer"),
        action=action,
        amount=amount,
        currency=currency,
        reason=reason.removeprefix("Rules engine (not a model): "),
    )
    outcome: dict[str, str] = {}
    errors: list[str] = []
    # The money moved: a failed notice is recorded, not fatal, and one channel failing does not
    # keep the other from being told (the CRM case is closed even when the e-mail bounced).
    try:
        if to:
            outcome["email"] = email.send([to], subject, body, reference=f"notice-{state['case_id']}")
    except Exception as exc:  # noqa: BLE001
        errors.append(f"{exc.__class__.__name__}: {exc}")
    try:
        crm.record_outcome(state["case_id"], "Closed", f"{action} {amount} {currency}")
    except Exception as exc:  # noqa: BLE001
        errors.append(f"{exc.__class__.__name__}: {exc}")
    if errors:
        outcome["error"] = "; ".join(errors)
        log.warning("customer notice for %s failed: %s", state["case_id"], outcome["error"])
    db.transact(lambda cur: repo.audit(cur, state["case_id"], STEP, "customer_notified", outcome, run_id=run_id))
