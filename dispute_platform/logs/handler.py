"""The handler both log paths use (platform loggers and Dagster's per-run logs), and how it is
installed: `install_workflow_log()` for the platform logger, `dagster_python_logs_config()` for
dagster.yaml."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dispute_platform.logs.fields import KEPT_DAGSTER_EVENTS, dagster_event_type
from dispute_platform.logs.formatter import JsonFormatter
from dispute_platform.logs.redaction import RedactingFilter
from dispute_platform.logs.rotating import shared_file

LOG_FILE = "workflow.log"
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5
PLATFORM_LOGGER = "dispute_platform"


def default_log_dir() -> Path:
    from dispute_platform.settings import get_settings

    return get_settings().log_dir


class WorkflowLogHandler(logging.Handler):
    """The handler both paths use. Built with no arguments it reads LOG_DIR, LOG_MAX_BYTES and
    LOG_BACKUP_COUNT from the settings (dagster.yaml needs no paths). It writes records at `level`
    and above, plus Dagster's step, run, materialisation and check events (logged at DEBUG). A
    record that reaches it twice (a platform record Dagster also captured) is written once."""

    def __init__(
        self,
        log_dir: str | os.PathLike | None = None,
        max_bytes: int | None = None,
        backup_count: int | None = None,
        level: int | str = logging.INFO,
    ):
        super().__init__(level=logging.DEBUG)
        self.min_level = logging._checkLevel(level) if isinstance(level, str) else level
        if log_dir is None or max_bytes is None or backup_count is None:
            from dispute_platform.settings import get_settings

            settings = get_settings()
            log_dir = settings.log_dir if log_dir is None else log_dir
            max_bytes = settings.log_max_bytes if max_bytes is None else max_bytes
            backup_count = settings.log_backup_count if backup_count is None else backup_count
        self.path = Path(log_dir) / LOG_FILE
        self._file = shared_file(self.path, int(max_bytes), int(backup_count))
        self.addFilter(RedactingFilter())
        self.setFormatter(JsonFormatter())

    def handle(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_dp_written", None) == id(self._file):
            return False
        if record.levelno < self.min_level and dagster_event_type(record) not in KEPT_DAGSTER_EVENTS:
            return False
        if hasattr(record, "progress"):
            return False  # a progress bar's feed, not a log line
        try:
            return super().handle(record)
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)
            return False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._file.write(self.format(record))
            record._dp_written = id(self._file)
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)


def install_workflow_log(log_dir: str | os.PathLike | None = None, *, level: int = logging.INFO) -> WorkflowLogHandler:
    """Send platform logs (`dispute_platform.*`) to workflow.log. Idempotent per process."""
    logger = logging.getLogger(PLATFORM_LOGGER)
    wanted = (Path(log_dir) if log_dir is not None else default_log_dir()).resolve() / LOG_FILE
    for handler in logger.handlers:
        if isinstance(handler, WorkflowLogHandler) and handler.path.resolve() == wanted:
            return handler
    for handler in [h for h in logger.handlers if isinstance(h, WorkflowLogHandler)]:
        logger.removeHandler(handler)  # LOG_DIR changed (tests): one file at a time
    handler = WorkflowLogHandler(log_dir)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    return handler


def dagster_python_logs_config(level: str = "INFO") -> dict[str, Any]:
    """The `python_logs` section of dagster.yaml that sends every run's logs to workflow.log."""
    # No handler "level" here: it would hide the step and materialisation events Dagster logs at
    # DEBUG; the handler itself writes INFO and above plus those events.
    return {
        "python_log_level": level,
        "dagster_handler_config": {"handlers": {"workflow_log": {"class": "dispute_platform.logs.WorkflowLogHandler"}}},
    }


def iter_lines(log_dir: str | os.PathLike) -> Iterable[str]:
    """Every line of workflow.log and its backups (oldest first): what a scan reads."""
    base = Path(log_dir) / LOG_FILE
    files = sorted(base.parent.glob(LOG_FILE + ".*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    for path in [*[p for p in files if p.suffix[1:].isdigit()], base]:
        if path.exists():
            yield from path.read_text(encoding="utf-8").splitlines()
