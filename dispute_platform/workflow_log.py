"""The logging package's old address, kept so that a dagster.yaml written before the move (its
`python_logs` handler class `dispute_platform.workflow_log.WorkflowLogHandler`) still loads. New
code imports `dispute_platform.logs`."""

from dispute_platform.logs import *  # noqa: F403
from dispute_platform.logs import __all__  # noqa: F401
