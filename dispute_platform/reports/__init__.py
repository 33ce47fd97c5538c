"""Reports over the platform's Postgres state: pure polars computations, a chart, and their queries."""
