"""What a line carries beside its message: the fields of `log_context` blocks, and the run id,
step, partition and cost read from Dagster's records or from the step the caller runs in."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_log_context: ContextVar[dict[str, Any] | None] = ContextVar("dispute_platform_log_context", default=None)


def current_log_context() -> dict[str, Any]:
    """The fields `log_context` blocks around the caller have set."""
    return _log_context.get() or {}


@contextmanager
def log_context(**fields: Any):
    """Fields (case_id, step, cost_usd ...) added to every platform log line inside the block."""
    token = _log_context.set({**current_log_context(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _log_context.reset(token)


def dagster_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Run id, step, partition (the case id of a dispute run) and cost from a Dagster record."""
    meta = getattr(record, "dagster_meta", None)
    if not isinstance(meta, dict):
        return {}
    fields: dict[str, Any] = {"run_id": meta.get("run_id"), "job": meta.get("job_name"), "step": meta.get("step_key")}
    tags = meta.get("job_tags") or {}
    if tags.get("dagster/partition"):
        fields["partition"] = tags["dagster/partition"]
    event = meta.get("dagster_event")
    if event is not None:
        fields["event"] = getattr(getattr(event, "event_type", None), "value", None)
        data = getattr(event, "event_specific_data", None)
        error = getattr(data, "error", None)
        if error is not None and hasattr(error, "to_string"):
            fields["exception"] = error.to_string()
        materialization = getattr(data, "materialization", None)
        if materialization is not None:
            fields["asset"] = materialization.asset_key.to_user_string()
            if materialization.partition:
                fields["partition"] = materialization.partition
            for name in ("cost_usd", "input_tokens", "output_tokens", "status"):
                value = materialization.metadata.get(name)
                if value is not None:
                    fields[name] = getattr(value, "value", value)
    fields["message"] = meta.get("orig_message")
    return fields


def current_run_fields() -> dict[str, Any]:
    """For platform records logged inside a Dagster step: its run id, step and partition."""
    try:
        from dagster._core.execution.context.compute import current_execution_context
    except ImportError:  # pragma: no cover - dagster always present in this package
        return {}
    ctx = current_execution_context.get()
    if ctx is None:
        return {}
    try:
        op_ctx = ctx.op_execution_context
        fields: dict[str, Any] = {"run_id": op_ctx.run_id, "step": op_ctx.op_handle.name}
        if op_ctx.has_partition_key and not op_ctx.has_partition_key_range:
            fields["partition"] = op_ctx.partition_key
        return fields
    except Exception:  # noqa: BLE001 - context outside a step: no fields, never a lost line
        return {}


# Dagster logs its events at DEBUG; these are the ones an operator reads (the rest is bookkeeping).
KEPT_DAGSTER_EVENTS = {
    "PIPELINE_START", "PIPELINE_SUCCESS", "PIPELINE_FAILURE", "PIPELINE_CANCELED", "RUN_START", "RUN_SUCCESS",
    "RUN_FAILURE", "RUN_CANCELED", "STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_UP_FOR_RETRY", "STEP_RESTARTED",
    "ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION",
}  # fmt: skip


def dagster_event_type(record: logging.LogRecord) -> str | None:
    meta = getattr(record, "dagster_meta", None)
    event = meta.get("dagster_event") if isinstance(meta, dict) else None
    return getattr(getattr(event, "event_type", None), "value", None) if event is not None else None
