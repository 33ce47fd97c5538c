"""Structured logs: one JSON object per line in `LOG_DIR/workflow.log`, rotated at 10 MB with 5
backups, with the case id, Dagster run id, step and cost where they apply.

Two paths lead into the file, both through `WorkflowLogHandler`:
- platform code (`logging.getLogger("dispute_platform...")`): `install_workflow_log()` puts the
  handler on the `dispute_platform` logger when the definitions (or the CLI) load;
- Dagster's per-run logs (`context.log`, step and materialisation events): the instance's
  `python_logs.dagster_handler_config` names the same handler class, so every run on the instance
  hands it its records. (A `@logger` on the Definitions would only be used by runs whose run
  config lists it, so it is not the way.)

Nothing secret reaches the file: `RedactingFilter` replaces the values of secret environment
variables (API keys, passwords, tokens, the password of every database URL), bearer tokens, key
and URL-credential patterns and values registered at run time (`register_secret`), then masks card
numbers, e-mail addresses and phone numbers with `mask_pii`. It runs on every string of the
record, the traceback included, before the line is written.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import traceback
from collections.abc import Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dispute_platform.domain.masking import mask_pii

LOG_FILE = "workflow.log"
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5
REDACTED = "[REDACTED]"
PLATFORM_LOGGER = "dispute_platform"

# --- secrets -------------------------------------------------------------------------------------

# Named explicitly (the platform's own secrets) ...
SECRET_ENV = (
    "OPENAI_API_KEY", "GMAIL_APP_PASSWORD", "STRIPE_SECRET_KEY", "PAYMENT_SECRET_KEY", "SALESFORCE_ACCESS_TOKEN",
    "CRM_ACCESS_TOKEN", "SALESFORCE_CLIENT_SECRET", "ZUORA_CLIENT_SECRET", "ZUORA_ACCESS_TOKEN", "BILLING_ACCESS_TOKEN",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "REVIEWER_TOKEN", "DISPUTE_PLATFORM_REVIEWER_TOKEN",
)  # fmt: skip
# ... and by the shape of their names (anyone's): FOO_API_KEY, BAR_PASSWORD, X_TOKEN ...
_SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL)", re.IGNORECASE)
_NOT_SECRET_VALUES = {"", "local", "test", "true", "false", "none", "null", "0", "1"}
_MIN_SECRET_LEN = 6
_REGISTERED: set[str] = set()

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # user:password@ in any URL (database, broker, proxy)
    (re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^\s:/@]+:)[^\s@/]+@", re.IGNORECASE), r"\g<head>" + REDACTED + "@"),
    (re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE), r"\1 " + REDACTED),
    (re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"), REDACTED),  # OpenAI keys
    (re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}"), REDACTED),  # Stripe secret/restricted keys
    (re.compile(r"\bwhsec_[A-Za-z0-9]{8,}"), REDACTED),  # Stripe webhook secrets
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),  # AWS access key ids
    (
        re.compile(
            r"(?P<key>\b(?:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token|token|authorization)"
            r"[\"']?\s*[=:]\s*[\"']?)(?!\[REDACTED\])[^\s\"',;}&]+",
            re.IGNORECASE,
        ),
        r"\g<key>" + REDACTED,
    ),
]


_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")


def register_secret(value: str | None) -> None:
    """A secret known only at run time (a reviewer token just created, say): never log it."""
    if value and len(value) >= _MIN_SECRET_LEN:
        _REGISTERED.add(value)


def _url_password(value: str) -> str | None:
    if "://" not in value:
        return None
    try:
        return urlsplit(value).password
    except ValueError:
        return None


def secret_values(environ: dict[str, str] | None = None) -> set[str]:
    """Every value in the environment that must never appear in a log."""
    environ = dict(os.environ if environ is None else environ)
    found = set(_REGISTERED)
    for name, value in environ.items():
        if not value or value.lower() in _NOT_SECRET_VALUES:
            continue
        if name.upper() in SECRET_ENV or _SECRET_NAME.search(name):
            if len(value) >= _MIN_SECRET_LEN:
                found.add(value)
        password = _url_password(value)
        if password and len(password) >= 3:
            found.add(password)
    return found


_compiled: tuple[frozenset[str], re.Pattern[str] | None] = (frozenset(), None)
_compiled_lock = threading.Lock()


def _secrets_pattern() -> re.Pattern[str] | None:
    global _compiled
    values = frozenset(secret_values())
    with _compiled_lock:
        if values != _compiled[0]:
            # Longest first, so a secret that contains another is replaced whole.
            alternatives = sorted(values, key=len, reverse=True)
            _compiled = (values, re.compile("|".join(re.escape(v) for v in alternatives)) if alternatives else None)
        return _compiled[1]


def redact(text: str, pattern: re.Pattern[str] | None | bool = True) -> str:
    """Secrets out, then card numbers, e-mail addresses and phone numbers masked. `pattern` is
    the compiled secrets pattern when the caller already has it (one environment scan a line)."""
    if not text:
        return text
    text = text.replace("\x00", "\\u0000")  # NUL marks held UUIDs below
    secrets = _secrets_pattern() if pattern is True else pattern
    if secrets is not None and secrets is not False:
        text = secrets.sub(REDACTED, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    # Run ids and other UUIDs are not phone or card numbers: keep them out of the PII masking.
    uuids: list[str] = []

    def hold(match: re.Match[str]) -> str:
        uuids.append(match.group())
        return f"\x00{len(uuids) - 1}\x00"

    text = mask_pii(_UUID.sub(hold, text))
    return re.sub(r"\x00(\d+)\x00", lambda m: uuids[int(m.group(1))], text) if uuids else text


def _redact_value(value: Any, pattern: re.Pattern[str] | None | bool = True) -> Any:
    """Plain strings, dicts, lists and tuples only: other objects (Dagster's events are tuples)
    are left as they are, and the formatter writes only what it picked from them."""
    if isinstance(value, str):
        return redact(value, pattern)
    if type(value) is dict:
        return {k: _redact_value(v, pattern) for k, v in value.items()}
    if type(value) in (list, tuple):
        return [_redact_value(v, pattern) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Rewrites a record so that no secret or unmasked PII is left in it: the message (with its
    arguments merged in), the traceback, the stack and every extra string attribute."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_dp_redacted", False):
            return True
        try:
            self._redact(record)
        except Exception:  # noqa: BLE001 - never fail the caller; never write what was not redacted
            record.msg, record.args, record.exc_info, record.exc_text = "[log record could not be redacted]", (), None, None
            record._dp_redacted = True
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        secrets = _secrets_pattern()
        record.msg, record.args = redact(message, secrets), ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)), secrets)
            record.exc_info = None  # the text above replaces it: the raw exception may hold secrets
        elif record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, secrets)
        for name, value in list(record.__dict__.items()):
            if name in _STANDARD_ATTRS or name.startswith(("_", "dagster")):
                continue  # Dagster's own attributes stay intact: other handlers read them
            if isinstance(value, str) or type(value) in (dict, list, tuple):
                setattr(record, name, _redact_value(value, secrets))
        record._dp_redacted = True


_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "dagster_meta"}


# --- what a line carries -------------------------------------------------------------------------

_log_context: ContextVar[dict[str, Any] | None] = ContextVar("dispute_platform_log_context", default=None)


@contextmanager
def log_context(**fields: Any):
    """Fields (case_id, step, cost_usd ...) added to every platform log line inside the block."""
    token = _log_context.set({**(_log_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _log_context.reset(token)


def _dagster_fields(record: logging.LogRecord) -> dict[str, Any]:
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


def _current_run_fields() -> dict[str, Any]:
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


def _dagster_event_type(record: logging.LogRecord) -> str | None:
    meta = getattr(record, "dagster_meta", None)
    event = meta.get("dagster_event") if isinstance(meta, dict) else None
    return getattr(getattr(event, "event_type", None), "value", None) if event is not None else None


_CONTEXT_FIELDS = ("case_id", "run_id", "step", "cost_usd", "partition", "job", "event", "asset", "input_tokens", "output_tokens", "status")


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
        dagster = _dagster_fields(record)
        message = dagster.pop("message", None) or record.getMessage()
        fields = {**_current_run_fields(), **(_log_context.get() or {}), **dagster}
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                fields[name] = value
        if "case_id" not in fields and fields.get("partition") and not _NOT_CASE_PARTITIONS & {
            fields.get("job"), fields.get("step"), fields.get("asset")
        }:
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
        secrets = _secrets_pattern()
        for name, value in line.items():
            if name not in _OWN_FIELDS:
                line[name] = _redact_value(value, secrets)
        return json.dumps(line, default=str, ensure_ascii=False)


# --- the file ------------------------------------------------------------------------------------


class _RotatingFile:
    """Appends lines to one file shared by every process on the machine (webserver, daemon, code
    servers, run workers): each write holds an exclusive lock on `<file>.lock`, reopens the file
    when another process rotated it, and rotates when the next line would pass `max_bytes`."""

    def __init__(self, path: Path, max_bytes: int, backup_count: int):
        self.path = path
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._lock_fd: int | None = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._lock_fd is None:
            self._lock_fd = os.open(f"{self.path}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _stale(self) -> bool:
        if self._fd is None:
            return True
        try:
            return os.stat(self.path).st_ino != os.fstat(self._fd).st_ino
        except FileNotFoundError:
            return True

    def _rotate(self) -> None:
        for index in range(self.backup_count - 1, 0, -1):
            source = Path(f"{self.path}.{index}")
            if source.exists():
                os.replace(source, f"{self.path}.{index + 1}")
        if self.path.exists():
            os.replace(self.path, f"{self.path}.1")
        self._open()

    def write(self, line: str) -> None:
        data = (line.replace("\n", "\\n") + "\n").encode("utf-8")
        with self._lock:
            if self._lock_fd is None:
                self._open()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                if self._stale():
                    self._open()
                size = os.fstat(self._fd).st_size
                if size and size + len(data) > self.max_bytes:
                    self._rotate()
                os.write(self._fd, data)
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            for fd in (self._fd, self._lock_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = self._lock_fd = None


_files: dict[tuple[str, int, int], _RotatingFile] = {}
_files_lock = threading.Lock()


def _shared_file(path: Path, max_bytes: int, backup_count: int) -> _RotatingFile:
    key = (str(path.resolve()), max_bytes, backup_count)
    with _files_lock:
        if key not in _files:
            _files[key] = _RotatingFile(path.resolve(), max_bytes, backup_count)
        return _files[key]


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
        self._file = _shared_file(self.path, int(max_bytes), int(backup_count))
        self.addFilter(RedactingFilter())
        self.setFormatter(JsonFormatter())

    def handle(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_dp_written", None) == id(self._file):
            return False
        if record.levelno < self.min_level and _dagster_event_type(record) not in KEPT_DAGSTER_EVENTS:
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
        "dagster_handler_config": {"handlers": {"workflow_log": {"class": f"{__name__}.WorkflowLogHandler"}}},
    }


def iter_lines(log_dir: str | os.PathLike) -> Iterable[str]:
    """Every line of workflow.log and its backups (oldest first): what a scan reads."""
    base = Path(log_dir) / LOG_FILE
    files = sorted(base.parent.glob(LOG_FILE + ".*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    for path in [*[p for p in files if p.suffix[1:].isdigit()], base]:
        if path.exists():
            yield from path.read_text(encoding="utf-8").splitlines()
