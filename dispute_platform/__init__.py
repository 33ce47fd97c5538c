"""dispute_platform: billing disputes in, reviewed and executed resolutions out, on Dagster."""

import warnings

__version__ = "0.1.0"

# Two Dagster features this project relies on on purpose, and says so in the README: single-run
# backfill policies (beta) and partitioned asset checks (preview). Their warnings, printed on every
# import in every run process, would only bury the logs that matter.
warnings.filterwarnings("ignore", message=r".*`backfill_policy`.*is currently in beta")
warnings.filterwarnings("ignore", message=r".*partitions_def on an AssetCheckSpec is currently in preview")
