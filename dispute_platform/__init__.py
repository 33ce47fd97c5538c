"""dispute_platform: billing disputes in, reviewed and executed resolutions out, on Dagster."""

__version__ = "0.1.0"
