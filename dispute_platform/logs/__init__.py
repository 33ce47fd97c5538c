"""Structured logs, a package of single-purpose modules (redaction, fields, formatter, rotating,
handler): one JSON object per line in `LOG_DIR/workflow.log`, rotated at 10 MB with 5
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

from dispute_platform.logs.fields import log_context
from dispute_platform.logs.handler import (
    BACKUP_COUNT,
    LOG_FILE,
    MAX_BYTES,
    PLATFORM_LOGGER,
    WorkflowLogHandler,
    dagster_python_logs_config,
    default_log_dir,
    install_workflow_log,
    iter_lines,
)
from dispute_platform.logs.redaction import REDACTED, RedactingFilter, redact, register_secret, secret_values

__all__ = [
    "BACKUP_COUNT",
    "LOG_FILE",
    "MAX_BYTES",
    "PLATFORM_LOGGER",
    "REDACTED",
    "RedactingFilter",
    "WorkflowLogHandler",
    "dagster_python_logs_config",
    "default_log_dir",
    "install_workflow_log",
    "iter_lines",
    "log_context",
    "redact",
    "register_secret",
    "secret_values",
]
