"""Every SQL statement the platform runs, as small functions over a cursor.

Parameterized throughout (psycopg2 binds values; nothing from a dispute is ever formatted into
SQL). Functions take a cursor so callers choose the transaction boundary.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from psycopg2.extras import Json

from dispute_platform.domain.models import DisputeEvent

# Fixed namespace: a case's workflow id (run_id) is the same on every machine and every retry.
WORKFLOW_NAMESPACE = uuid.UUID("5f1b7c1e-6a53-4c8e-9d0b-2f1f0e0d5a11")


def workflow_run_id(case_id: str) -> str:
    return str(uuid.uuid5(WORKFLOW_NAMESPACE, case_id))


def _json(value: Any) -> Json:
    return Json(value, dumps=lambda v: json.dumps(v, default=str))


# --- audit ---------------------------------------------------------------------------------


def audit(
    cur, case_id: str, step: str, event: str, details: dict | None = None, *, actor: str = "system", run_id: str | None = None
) -> None:
    cur.execute(
        "INSERT INTO audit_log (case_id, step, event, actor, details, dagster_run_id) VALUES (%s, %s, %s, %s, %s, %s)",
        (case_id, step, event, actor, _json(details or {}), run_id),
    )


def audit_trail(cur, case_id: str) -> list[dict]:
    cur.execute(
        "SELECT id, step, event, actor, details, dagster_run_id, created_at FROM audit_log WHERE case_id = %s ORDER BY id",
        (case_id,),
    )
    return cur.fetchall()


# --- intake --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AcceptedEvent:
    event: DisputeEvent
    body: dict
    message_id: str | None
    source_queue: str | None


@dataclass(frozen=True)
class RejectedBody:
    body: str
    raw: bytes
    reason: str
    message_id: str | None
    source_queue: str | None
    dead_lettered: bool = False


def record_accepted(cur, accepted: Sequence[AcceptedEvent]) -> list[str]:
    """Store events idempotently; open a workflow row for each case seen for the first time.
    Returns the case ids of events stored now (redeliveries return nothing)."""
    stored: list[str] = []
    for item in accepted:
        event = item.event
        cur.execute(
            """INSERT INTO dispute_events (case_id, event_id, customer_id, body, message_id, source_queue)
               VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (case_id, event_id) DO NOTHING RETURNING id""",
            (
                event.case_id,
                event.effective_event_id(),
                event.customer_id,
                _json(item.body),
                item.message_id,
                item.source_queue,
            ),
        )
        if cur.fetchone() is None:
            continue
        stored.append(event.case_id)
        cur.execute(
            """INSERT INTO workflow_states (run_id, case_id, customer_id, status, current_step, dispute_type,
                                            disputed_amount, currency)
               VALUES (%s, %s, %s, 'received', 'intake', %s, %s, %s) ON CONFLICT (case_id) DO NOTHING RETURNING id""",
            (workflow_run_id(event.case_id), event.case_id, event.customer_id, event.dispute_type, event.amount, event.currency),
        )
        first = cur.fetchone() is not None
        audit(
            cur,
            event.case_id,
            "intake",
            "event_received" if first else "event_received_for_known_case",
            {"event_id": event.effective_event_id(), "message_id": item.message_id},
        )
    return stored


def escape_nul(text: str) -> str:
    # Postgres text cannot hold NUL; keep it visible instead of losing the rest of the body.
    return text.replace("\x00", "\\u0000")


def record_rejected(cur, rejected: Sequence[RejectedBody]) -> int:
    count = 0
    for item in rejected:
        cur.execute(
            """INSERT INTO rejected_events (body, body_sha256, body_bytes, reason, message_id, source_queue, dead_lettered)
               VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (body_sha256, message_id) DO NOTHING RETURNING id""",
            (
                escape_nul(item.body),
                hashlib.sha256(item.raw).hexdigest(),
                len(item.raw),
                item.reason,
                item.message_id,
                item.source_queue,
                item.dead_lettered,
            ),
        )
        count += cur.fetchone() is not None
    return count


@dataclass(frozen=True)
class NewDispute:
    case_id: str
    first_event_id: int


def new_disputes_after(cur, cursor: int, limit: int) -> list[NewDispute]:
    """Cases whose first event arrived after `cursor` (a dispute_events id), oldest first.
    Later events for an already known case do not start a second workflow."""
    cur.execute(
        """SELECT case_id, MIN(id) AS first_id FROM dispute_events GROUP BY case_id
           HAVING MIN(id) > %s ORDER BY MIN(id) LIMIT %s""",
        (cursor, limit),
    )
    return [NewDispute(row["case_id"], row["first_id"]) for row in cur.fetchall()]


def first_event(cur, case_id: str) -> dict | None:
    cur.execute("SELECT * FROM dispute_events WHERE case_id = %s ORDER BY id LIMIT 1", (case_id,))
    return cur.fetchone()


def events_for(cur, case_ids: Sequence[str]) -> dict[str, dict]:
    cur.execute(
        "SELECT DISTINCT ON (case_id) * FROM dispute_events WHERE case_id = ANY(%s) ORDER BY case_id, id",
        (list(case_ids),),
    )
    return {row["case_id"]: row for row in cur.fetchall()}


# --- workflow state ------------------------------------------------------------------------


def set_status(
    cur,
    case_id: str,
    status: str,
    step: str,
    reason: str | None = None,
    *,
    completed: bool = False,
    **columns: Any,
) -> None:
    """Move a dispute to `status` at `step`, optionally writing more workflow_states columns."""
    allowed = {
        "customer_id", "dispute_type", "segment", "disputed_amount", "currency", "crm_data", "billing_data",
        "payment_data", "validation", "resolution_proposal", "proposal_version", "human_review_data",
        "final_resolution",
    }  # fmt: skip
    unknown = set(columns) - allowed
    if unknown:
        raise ValueError(f"not workflow_states columns: {sorted(unknown)}")
    assignments = ["status = %s", "current_step = %s", "status_reason = %s", "updated_at = now()"]
    values: list[Any] = [status, step, reason]
    for name, value in columns.items():
        assignments.append(f"{name} = %s")  # names come from the allow-list above, never from input
        values.append(_json(value) if isinstance(value, dict | list) else value)
    if completed:
        assignments.append("completed_at = now()")
    cur.execute(
        f"UPDATE workflow_states SET {', '.join(assignments)} WHERE case_id = %s",
        (*values, case_id),
    )
    if cur.rowcount != 1:
        raise LookupError(f"no workflow state for case {case_id}")


def workflow_state(cur, case_id: str) -> dict | None:
    cur.execute("SELECT * FROM workflow_states WHERE case_id = %s", (case_id,))
    return cur.fetchone()


def workflow_states(cur, case_ids: Iterable[str]) -> dict[str, dict]:
    cur.execute("SELECT * FROM workflow_states WHERE case_id = ANY(%s)", (list(case_ids),))
    return {row["case_id"]: row for row in cur.fetchall()}


def add_cost(cur, case_id: str, item: str, amount: Decimal, *, llm: bool = False) -> None:
    """Add to a dispute's cost totals and its per-service breakdown."""
    cur.execute(
        """UPDATE workflow_states SET
             llm_cost = llm_cost + %s,
             total_cost = total_cost + %s,
             cost_breakdown = jsonb_set(cost_breakdown, ARRAY[%s],
                 to_jsonb(COALESCE((cost_breakdown ->> %s)::numeric, 0) + %s), true),
             updated_at = now()
           WHERE case_id = %s""",
        (amount if llm else 0, amount, item, item, amount, case_id),
    )


def status_counts(cur) -> dict[str, int]:
    cur.execute("SELECT status, COUNT(*) AS n FROM workflow_states GROUP BY status")
    return {row["status"]: row["n"] for row in cur.fetchall()}


# --- proposals -----------------------------------------------------------------------------


def save_proposal(cur, case_id: str, proposal: dict, *, status: str, run_id: str | None) -> int:
    """Store a new proposal version; earlier undecided versions are superseded. Returns the version."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("proposal:" + case_id,))
    cur.execute("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM proposals WHERE case_id = %s", (case_id,))
    version = cur.fetchone()["v"]
    cur.execute(
        "UPDATE proposals SET status = 'superseded' WHERE case_id = %s AND status IN ('pending_review', 'blocked')",
        (case_id,),
    )
    cur.execute(
        """INSERT INTO proposals (case_id, version, status, proposal, action, amount, currency, confidence, provider,
                                  model, prompt_version, input_tokens, output_tokens, cost_usd, cache_hit, latency_ms,
                                  flags, dagster_run_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            case_id, version, status, _json(proposal), proposal["action"], proposal["amount"], proposal["currency"],
            proposal["confidence"], proposal["provider"], proposal["model"], proposal["prompt_version"],
            proposal["input_tokens"], proposal["output_tokens"], proposal["cost_usd"], proposal["cache_hit"],
            proposal["latency_ms"], _json(proposal["flags"]), run_id,
        ),
    )  # fmt: skip
    return version


def latest_proposal(cur, case_id: str) -> dict | None:
    cur.execute("SELECT * FROM proposals WHERE case_id = %s ORDER BY version DESC LIMIT 1", (case_id,))
    return cur.fetchone()


def latest_proposals(cur, case_ids: Sequence[str]) -> dict[str, dict]:
    cur.execute(
        "SELECT DISTINCT ON (case_id) * FROM proposals WHERE case_id = ANY(%s) ORDER BY case_id, version DESC",
        (list(case_ids),),
    )
    return {row["case_id"]: row for row in cur.fetchall()}


def set_proposal_status(cur, case_id: str, version: int, status: str) -> None:
    cur.execute("UPDATE proposals SET status = %s WHERE case_id = %s AND version = %s", (status, case_id, version))


def record_check(cur, case_id: str, version: int, name: str, passed: bool, figure: Decimal, cap: Decimal, run_id: str | None) -> None:
    cur.execute(
        """INSERT INTO check_results (case_id, proposal_version, check_name, passed, figure, cap, dagster_run_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (case_id, proposal_version, check_name) DO UPDATE
             SET passed = EXCLUDED.passed, figure = EXCLUDED.figure, cap = EXCLUDED.cap,
                 dagster_run_id = EXCLUDED.dagster_run_id, evaluated_at = now()""",
        (case_id, version, name, passed, figure, cap, run_id),
    )


def check_results(cur, case_id: str, version: int) -> dict[str, dict]:
    cur.execute("SELECT * FROM check_results WHERE case_id = %s AND proposal_version = %s", (case_id, version))
    return {row["check_name"]: row for row in cur.fetchall()}


def cache_get(cur, key: str) -> dict | None:
    cur.execute("UPDATE proposal_cache SET hits = hits + 1 WHERE cache_key = %s RETURNING reply", (key,))
    row = cur.fetchone()
    return row["reply"] if row else None


def cache_put(cur, key: str, case_id: str, dispute_type: str, model: str, reply: dict) -> None:
    cur.execute(
        """INSERT INTO proposal_cache (cache_key, case_id, dispute_type, model, reply) VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (cache_key) DO NOTHING""",
        (key, case_id, dispute_type, model, _json(reply)),
    )


def cache_invalidate_type(cur, dispute_type: str) -> int:
    cur.execute("DELETE FROM proposal_cache WHERE dispute_type = %s", (dispute_type,))
    return cur.rowcount


# --- historical resolutions ----------------------------------------------------------------


def upsert_historical(cur, records: Sequence[Any]) -> int:
    """Insert or replace past resolutions (HistoricalResolution models); a changed record loses
    its embedding mark so the next embedding pass picks it up."""
    for record in records:
        cur.execute(
            """INSERT INTO historical_resolutions (case_id, dispute_type, source, record)
               VALUES (%s, %s, %s, %s)
               ON CONFLICT (case_id) DO UPDATE SET dispute_type = EXCLUDED.dispute_type, source = EXCLUDED.source,
                   record = EXCLUDED.record, updated_at = now(),
                   embedded_model = CASE WHEN historical_resolutions.record = EXCLUDED.record
                                         THEN historical_resolutions.embedded_model END""",
            (record.case_id, record.dispute_type, record.source, _json(record.model_dump(mode="json"))),
        )
    return len(records)


def mark_embedded(cur, case_ids: Sequence[str], model_identity: str) -> None:
    cur.execute(
        "UPDATE historical_resolutions SET embedded_model = %s, embedded_at = now() WHERE case_id = ANY(%s)",
        (model_identity, list(case_ids)),
    )


def historical_counts(cur) -> list[dict]:
    cur.execute(
        "SELECT source, dispute_type, COUNT(*) AS n FROM historical_resolutions GROUP BY source, dispute_type ORDER BY 1, 2"
    )
    return cur.fetchall()


# --- reviewers and decisions ---------------------------------------------------------------


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_reviewer(cur, name: str, token: str, email: str | None = None) -> None:
    cur.execute(
        "INSERT INTO reviewers (name, email, token_sha256) VALUES (%s, %s, %s)",
        (name, email, token_digest(token)),
    )


def reviewer_for_token(cur, token: str) -> str | None:
    cur.execute("SELECT name FROM reviewers WHERE token_sha256 = %s AND disabled_at IS NULL", (token_digest(token),))
    row = cur.fetchone()
    return row["name"] if row else None


def lock_case(cur, case_id: str) -> None:
    """Serialise decisions and executions of one dispute (transaction-scoped)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("case:" + case_id,))


def decisions_for(cur, case_id: str, version: int | None = None) -> list[dict]:
    if version is None:
        cur.execute("SELECT * FROM review_decisions WHERE case_id = %s ORDER BY id", (case_id,))
    else:
        cur.execute(
            "SELECT * FROM review_decisions WHERE case_id = %s AND proposal_version = %s ORDER BY id", (case_id, version)
        )
    return cur.fetchall()


def insert_decision(
    cur,
    *,
    case_id: str,
    version: int,
    decision: str,
    reviewer: str,
    comments: str,
    modified: dict | None,
    effective_action: str,
    effective_amount: Decimal,
    source: str,
) -> int:
    cur.execute(
        """INSERT INTO review_decisions (case_id, proposal_version, decision, reviewer, comments, modified_resolution,
                                         effective_action, effective_amount, source)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (case_id, version, decision, reviewer, comments, _json(modified) if modified else None, effective_action,
         effective_amount, source),
    )  # fmt: skip
    return cur.fetchone()["id"]


def final_decisions_after(cur, cursor: int, limit: int = 200) -> list[dict]:
    """Decisions that settled their dispute (decided or rejected), after a decision-id cursor."""
    cur.execute(
        """SELECT d.id, d.case_id, d.proposal_version FROM review_decisions d
           JOIN workflow_states w ON w.case_id = d.case_id
           WHERE d.id > %s AND w.proposal_version = d.proposal_version
             AND w.status NOT IN ('pending_review', 'review_escalated', 'awaiting_second_review')
             AND d.id = (SELECT MAX(id) FROM review_decisions x WHERE x.case_id = d.case_id AND x.proposal_version = d.proposal_version)
           ORDER BY d.id LIMIT %s""",
        (cursor, limit),
    )
    return cur.fetchall()


def overdue_reviews(cur, older_than_hours: float) -> list[dict]:
    cur.execute(
        """SELECT w.case_id, w.proposal_version, p.created_at FROM workflow_states w
           JOIN proposals p ON p.case_id = w.case_id AND p.version = w.proposal_version
           WHERE w.status = 'pending_review' AND p.created_at < now() - make_interval(secs => %s)
           ORDER BY p.created_at""",
        (older_than_hours * 3600,),
    )
    return cur.fetchall()


def pending_reviews(cur) -> list[dict]:
    cur.execute(
        """SELECT w.case_id, w.run_id, w.status, w.dispute_type, w.segment, w.disputed_amount, w.currency,
                  p.version, p.action, p.amount, p.confidence, p.flags, p.provider, p.created_at,
                  EXTRACT(EPOCH FROM now() - p.created_at) / 3600.0 AS age_hours
           FROM workflow_states w JOIN proposals p ON p.case_id = w.case_id AND p.version = w.proposal_version
           WHERE w.status IN ('pending_review', 'review_escalated', 'awaiting_second_review')
           ORDER BY p.created_at, w.case_id"""
    )
    return cur.fetchall()


# --- executions ----------------------------------------------------------------------------


def execution_for_key(cur, key: str) -> dict | None:
    cur.execute("SELECT * FROM executions WHERE idempotency_key = %s", (key,))
    return cur.fetchone()


def start_execution(
    cur, *, case_id: str, version: int, decision_id: int, key: str, action: str, amount: Decimal, currency: str
) -> dict:
    """The execution row for this key, created if new; attempts counts every try."""
    cur.execute(
        """INSERT INTO executions (case_id, proposal_version, decision_id, idempotency_key, action, amount, currency, status, attempts)
           VALUES (%s, %s, %s, %s, %s, %s, %s, 'started', 1)
           ON CONFLICT (idempotency_key) DO UPDATE SET attempts = executions.attempts + 1, updated_at = now()
           RETURNING *""",
        (case_id, version, decision_id, key, action, amount, currency),
    )
    return cur.fetchone()


def finish_execution(cur, key: str, status: str, provider_ref: str | None = None, error: str | None = None) -> None:
    cur.execute(
        "UPDATE executions SET status = %s, provider_ref = COALESCE(%s, provider_ref), error = %s, updated_at = now() "
        "WHERE idempotency_key = %s",
        (status, provider_ref, error, key),
    )


def succeeded_execution(cur, case_id: str) -> dict | None:
    cur.execute(
        "SELECT * FROM executions WHERE case_id = %s AND status IN ('succeeded', 'noop') ORDER BY id DESC LIMIT 1",
        (case_id,),
    )
    return cur.fetchone()


def executions_for(cur, case_id: str) -> list[dict]:
    cur.execute("SELECT * FROM executions WHERE case_id = %s ORDER BY id", (case_id,))
    return cur.fetchall()
