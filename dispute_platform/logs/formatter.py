"""One JSON object per line: ts, level, logger, message, and the context fields that apply, each
redacted once more (Dagster's fields are read after the filter ran)."""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime
from typing import Any

from dispute_platform.logs.fields import current_log_context, current_run_fields, dagster_fields
from dispute_platform.logs.redaction import redact_value, secrets_pattern

_CONTEXT_FIELDS = (
    "case_id",
    "run_id",
    "step",
    "cost_usd",
    "partition",
    "job",
    "event",
    "asset",
    "input_tokens",
    "output_tokens",
    "status",
)


_OWN_FIELDS = {"ts", "level", "logger", "pid"}
# Partitioned by something else than the case id (hash buckets of past cases).
_NOT_CASE_PARTITIONS = {"resolution_index", "reembed_resolutions"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, and the context fields that apply."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
        }
        dagster = dagster_fields(record)
        message = dagster.pop("message", None) or record.getMessage()
        fields = {**current_run_fields(), **current_log_context(), **dagster}
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                fields[name] = value
        if (
            "case_id" not in fields
            and fields.get("partition")
            and not _NOT_CASE_PARTITIONS & {fields.get("job"), fields.get("step"), fields.get("asset")}
        ):
            fields["case_id"] = fields["partition"]  # a dispute's partition key is its case id
        line["message"] = message
        line.update({k: v for k, v in fields.items() if v is not None})
        if "exception" in line:
            pass  # a Dagster event's error
        elif record.exc_text:
            line["exception"] = record.exc_text
        elif record.exc_info and record.exc_info[0] is not None:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info))
        if record.stack_info:
            line["stack"] = record.stack_info
        # Redact every field once more: the Dagster fields were read after the filter ran.
        secrets = secrets_pattern()
        for name, value in line.items():
            if name not in _OWN_FIELDS:
                line[name] = redact_value(value, secrets)
        return json.dumps(line, default=str, ensure_ascii=False)
