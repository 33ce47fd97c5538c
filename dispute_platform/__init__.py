"""dispute_platform: billing disputes in, reviewed and executed resolutions out, on Dagster."""

import os
import warnings

__version__ = "0.1.0"

# Two Dagster features this project relies on on purpose, and says so in the README: single-run
# backfill policies (beta) and partitioned asset checks (preview). Their warnings, printed on every
# import in every run process, would only bury the logs that matter.
warnings.filterwarnings("ignore", message=r".*`backfill_policy`.*is currently in beta")
warnings.filterwarnings("ignore", message=r".*partitions_def on an AssetCheckSpec is currently in preview")
# The instance's python_logs handler (run logs to workflow.log, docs/operations.md) is beta too.
warnings.filterwarnings("ignore", message=r"Handling yaml-defined logging configuration is currently in beta")
# platformdirs, asked for a runtime folder on a machine without a login session, falls back to /tmp.
warnings.filterwarnings("ignore", message=r"XDG_RUNTIME_DIR is not set")

# torch's OpenMP threads spin while they wait for work. Next to another busy thread (the Chroma
# writer of a re-embedding run, a second run on the host) the spinning starves everyone: measured
# on 2 cores, a 5-text encode took 1.3 s spinning and 0.06 s passive. Set before torch loads;
# an operator's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
