"""What `run` and `status` print: every dispute with its whole reason and its guardrail flags, and
the Dagster runs that failed while `run` watched (a failed run is news even when every dispute
settled: one dispute's failure can fail a run that carries many)."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table

from dispute_platform.store.states import status_summary

# Flags that only say a prompt section was trimmed to its budget: routine, left out of the table.
_ROUTINE_FLAG_PREFIXES = ("trimmed:",)


def _flags(flags: list | None) -> str:
    shown = [f for f in flags or [] if not str(f).startswith(_ROUTINE_FLAG_PREFIXES)]
    return ", ".join(str(f) for f in shown) or "-"


def summary_table(db, title: str) -> Table:
    rows = db.transact(status_summary)
    table = Table(title=title)
    for column in ("dispute", "type", "segment", "status", "action", "amount", "confidence", "cost $", "flags"):
        table.add_column(column, overflow="fold")
    # The whole reason, folded over lines: a reason cut at 80 characters hid what went wrong.
    table.add_column("executed / reason", overflow="fold", min_width=30, ratio=1)
    for r in rows:
        note = r["status_reason"] or ""
        if r["execution"]:
            note = f"{r['execution']} {r['executed_amount']}" + (f"; {note}" if note and r["execution"] != "succeeded" else "")
        table.add_row(
            r["case_id"],
            r["dispute_type"] or "-",
            r["segment"] or "-",
            r["status"],
            r["action"] or "-",
            f"{r['amount']} {r['currency']}" if r["action"] else "-",
            f"{r['confidence']:.2f}" if r["confidence"] is not None else "-",
            f"{r['cost_usd']:.6f}" if r["cost_usd"] is not None else "-",
            _flags(r["flags"]),
            note,
        )
    return table


def _root_message(error) -> str:
    """The innermost error of a chain: a step that ran out of retries says "Exceeded max_retries
    of 3"; what went wrong is its cause."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    message = error.message.strip()
    prefix = f"{error.cls_name}: "
    at = message.find(prefix)  # "dagster._core.definitions.events.Failure: 32 of 32 ..."
    return message[at + len(prefix) :] if at >= 0 else message


def failed_runs_since(since: datetime, instance=None) -> list[tuple[str, str, str]]:
    """(run id, step tag, why) of every Dagster run that failed after `since` (in `instance`, by
    default the one DAGSTER_HOME names)."""
    from dagster import DagsterInstance

    if instance is None:
        with DagsterInstance.get() as own:
            return failed_runs_since(since, own)
    return _failed_runs(since, instance)


def _failed_runs(since: datetime, instance) -> list[tuple[str, str, str]]:
    from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

    failed: list[tuple[str, str, str]] = []
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE], created_after=since)):
        reasons = []
        for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_FAILURE).records[:3]:
            event = record.event_log_entry.dagster_event
            error = getattr(event.event_specific_data, "error", None) if event is not None else None
            if event is not None:
                reasons.append(f"{event.step_key}: {_root_message(error) if error else event.message}")
        if not reasons:
            records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records
            event = records[-1].event_log_entry.dagster_event if records else None
            reasons.append(event.message if event is not None and event.message else "no failure event recorded")
        why = "; ".join(reasons)
        failed.append((run.run_id, run.tags.get("dispute_platform/step", run.job_name), why))
    return failed
