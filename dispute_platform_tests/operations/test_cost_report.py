"""Issue 5: the cost report equals a direct SQL computation over the same rows; the asset shows it
as tables and a chart; `dispute-platform costs` prints it."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance, materialize

from dispute_platform.assets.reports import report_window
from dispute_platform.reports.costs import DIMENSIONS, METRICS, build_report, calls_frame
from dispute_platform.reports.queries import load_calls
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform_tests.definitions import asset

pytestmark = pytest.mark.integration

MODELS = ["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "precedent-rules"]
TYPES = ["duplicate_charge", "service_outage", "late_fee", "wrong_amount"]
SEGMENTS = ["smb", "mid_market", "enterprise", None]
DAY0 = datetime(2026, 3, 1, tzinfo=UTC)


def seed(db, disputes: int = 60) -> None:
    """Disputes over six days, four types, four segments (one unknown), three models; some with
    several proposal versions (regenerated), some served from the cache, some blocked by a cap."""
    rng = random.Random(7)

    def write(cur) -> None:
        for n in range(disputes):
            case_id = f"CASE-{n:04d}"
            status = rng.choice(["pending_review", "completed", "blocked", "completed", "rejected"])
            cur.execute(
                """INSERT INTO workflow_states (run_id, case_id, customer_id, status, current_step, dispute_type, segment)
                   VALUES (%s, %s, %s, %s, 'ai_proposal', %s, %s)""",
                (str(uuid.uuid4()), case_id, f"CUST-{n % 9}", status, rng.choice(TYPES), rng.choice(SEGMENTS)),
            )
            versions = rng.choice([1, 1, 1, 2, 3])
            for version in range(1, versions + 1):
                cache_hit = rng.random() < 0.3
                tokens_in, tokens_out = rng.randint(300, 2075), rng.randint(40, 400)
                cost = (
                    Decimal("0")
                    if cache_hit
                    else (Decimal(tokens_in) * Decimal("0.15") + Decimal(tokens_out) * Decimal("0.6")) / 1_000_000
                )
                created = DAY0 + timedelta(days=rng.randint(0, 5), hours=rng.randint(0, 23), minutes=rng.randint(0, 59))
                # Some proposals took a re-ask or a timed-out attempt (an estimate); older rows say nothing.
                record: dict = rng.choice(
                    [{}, {"requests": 1}, {"requests": 2}, {"requests": 4, "estimated_cost_usd": "0.00045"}]
                )
                if "estimated_cost_usd" in record and not cache_hit:
                    cost += Decimal(record["estimated_cost_usd"])
                cur.execute(
                    """INSERT INTO proposals (case_id, version, status, proposal, action, amount, currency, confidence,
                                              provider, model, prompt_version, input_tokens, output_tokens, cost_usd,
                                              cache_hit, created_at)
                       VALUES (%s, %s, 'pending_review', %s, 'credit', 10, 'USD', 0.8, 'openai', %s, 'v1', %s, %s, %s, %s, %s)""",
                    (case_id, version, json.dumps(record), rng.choice(MODELS), tokens_in, tokens_out,
                     cost.quantize(Decimal("0.00000001")), cache_hit, created),
                )  # fmt: skip

    db.transact(write)


SQL = """
WITH calls AS (
    SELECT p.case_id, p.model, p.input_tokens, p.output_tokens, p.cost_usd::float8 AS cost, p.cache_hit,
           CASE WHEN p.cache_hit THEN 0 ELSE COALESCE((p.proposal->>'requests')::int, 1) END AS requests,
           CASE WHEN p.cache_hit THEN 0 ELSE COALESCE((p.proposal->>'estimated_cost_usd')::float8, 0) END AS estimated,
           (p.created_at AT TIME ZONE 'UTC')::date AS day, COALESCE(w.dispute_type, 'unknown') AS dispute_type,
           COALESCE(w.segment, 'unknown') AS segment, w.status
    FROM proposals p JOIN workflow_states w ON w.case_id = p.case_id
    WHERE p.created_at >= %(since)s
), per_dispute AS (
    SELECT {dim}::text AS value, case_id, COUNT(*) AS proposals, SUM(requests) AS calls, SUM(cache_hit::int) AS hits,
           SUM(input_tokens) AS tin, SUM(output_tokens) AS tout, SUM(cost) AS cost, SUM(estimated) AS estimated,
           bool_or(status = 'blocked') AS blocked
    FROM calls GROUP BY 1, case_id
)
SELECT value, COUNT(*) AS disputes, SUM(proposals) AS proposals, SUM(calls) AS calls, SUM(tin) AS tokens_in,
       SUM(tout) AS tokens_out, SUM(cost) AS llm_cost_usd, SUM(estimated) AS llm_cost_estimated_usd,
       AVG(cost) AS cost_mean_usd, percentile_cont(0.95) WITHIN GROUP (ORDER BY cost) AS cost_p95_usd,
       MAX(cost) AS cost_max_usd, SUM(hits) AS cache_hits, SUM(hits)::float8 / SUM(proposals) AS cache_hit_rate,
       SUM(blocked::int) AS blocked
FROM per_dispute GROUP BY value ORDER BY value
"""


def _sql_rollup(db, dim: str, since: datetime) -> dict[str, dict]:
    return {r["value"]: r for r in db.fetch_all(SQL.format(dim=dim), {"since": since})}


def _assert_equal(report_rows: dict[str, dict], sql_rows: dict[str, dict]) -> None:
    assert sorted(report_rows) == sorted(sql_rows)
    for value, sql in sql_rows.items():
        mine = report_rows[value]
        for metric in METRICS:
            assert mine[metric] == pytest.approx(float(sql[metric]), rel=1e-9, abs=1e-12), (value, metric)


@pytest.mark.parametrize("since", [None, date(2026, 3, 3)])
def test_report_equals_direct_sql(db, since):
    seed(db)
    report = build_report(load_calls(db, since), since)
    start = datetime.combine(since, datetime.min.time(), tzinfo=UTC) if since else datetime(1970, 1, 1, tzinfo=UTC)
    for dim in DIMENSIONS:
        mine = {str(r[dim]): r for r in report.by[dim].iter_rows(named=True)}
        _assert_equal(mine, _sql_rollup(db, dim, start))
    total = _sql_rollup(db, "'all'", start)
    _assert_equal({"all": report.total.row(0, named=True)}, total)
    # The fixture is not trivial: several days, cache hits, blocked disputes, regenerated proposals.
    assert report.by["day"].height == (6 if since is None else 4)
    assert report.total["cache_hits"][0] > 0 and report.total["blocked"][0] > 0
    assert report.total["proposals"][0] > report.total["disputes"][0]
    # Model requests are not proposals: re-asks and timed-out attempts count, cache hits do not.
    assert report.total["calls"][0] != report.total["proposals"][0]
    assert 0 < report.total["llm_cost_estimated_usd"][0] < report.total["llm_cost_usd"][0]
    assert "unknown" in report.by["segment"]["segment"].to_list()
    # The full cube adds up to the totals.
    assert report.detail["llm_cost_usd"].sum() == pytest.approx(report.total["llm_cost_usd"][0])
    assert report.detail["calls"].sum() == report.total["calls"][0]
    assert report.detail["proposals"].sum() == report.total["proposals"][0]


def test_empty_window_is_an_empty_report():
    report = build_report(calls_frame([]), date(2030, 1, 1))
    assert report.empty and report.total["disputes"][0] == 0


def test_asset_shows_tables_and_a_chart(db, pg_url, tmp_path, monkeypatch):
    from dispute_platform.settings import get_settings

    seed(db)
    monkeypatch.setenv("DISPUTE_PLATFORM_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    try:
        result = materialize(
            [asset("cost_report")],  # built from the settings just set
            instance=DagsterInstance.ephemeral(),
            resources={"postgres": PostgresResource(database_url=pg_url)},
            run_config={"ops": {"cost_report": {"config": {"days": 0}}}},
        )
    finally:
        get_settings.cache_clear()
    assert result.success
    meta = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    chart = Path(meta["chart_path"].value)
    assert chart.parent == tmp_path / "home" / "reports" and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (chart.parent / "cost_report.png").exists()
    assert meta["chart"].value.startswith("![LLM cost per day](data:image/png;base64,")
    assert "**Per dispute type**" in meta["report"].value
    for dim in DIMENSIONS:
        table = meta[f"by_{dim}"].value
        assert len(table.records) == len(build_report(load_calls(db)).by[dim])
    expected = build_report(load_calls(db)).total.row(0, named=True)
    assert meta["llm_cost_usd"].value == pytest.approx(expected["llm_cost_usd"])
    assert meta["blocked_by_cap"].value == expected["blocked"]
    assert meta["model_requests"].value == expected["calls"]
    assert meta["llm_cost_estimated_usd"].value == pytest.approx(expected["llm_cost_estimated_usd"])


def test_report_window_counts_today():
    assert report_window(0) is None
    assert report_window(1, date(2026, 3, 5)) == date(2026, 3, 5)
    assert report_window(7, date(2026, 3, 7)) == date(2026, 3, 1)


def test_costs_command_prints_the_same_figures(db, pg_url, monkeypatch):
    from dispute_platform.cli import main

    seed(db)
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("DISPUTE_EVENTS_QUEUE_URL", "http://127.0.0.1:1/queue/unused")  # no local SQS needed
    result = CliRunner().invoke(main, ["costs", "--since", "2026-03-03"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = build_report(load_calls(db, date(2026, 3, 3)), date(2026, 3, 3))
    total = report.total.row(0, named=True)
    assert "since 2026-03-03" in result.output
    assert f"{total['llm_cost_usd']:.6f}" in result.output
    for model in report.by["model"]["model"].to_list():
        assert model in result.output
    bad = CliRunner().invoke(main, ["costs", "--since", "March"])
    assert bad.exit_code != 0 and "not a date" in bad.output


def test_calls_count_every_billable_request_not_proposals():
    """Issue 16: 'calls 32' was printed for 40 requests (re-asks and timed-out attempts)."""
    at = DAY0
    rows = [
        {"case_id": "A", "model": "gpt-4o-mini", "input_tokens": 2400, "output_tokens": 600, "cost_usd": Decimal("0.00072"),
         "requests": 2, "estimated_cost_usd": 0, "cache_hit": False, "created_at": at, "status": "pending_review"},
        {"case_id": "B", "model": "gpt-4o-mini", "input_tokens": 4000, "output_tokens": 0, "cost_usd": Decimal("0.0006"),
         "requests": 4, "estimated_cost_usd": Decimal("0.0006"), "cache_hit": False, "created_at": at, "status": "pending_review"},
        {"case_id": "C", "model": "gpt-4o-mini", "input_tokens": 1200, "output_tokens": 300, "cost_usd": 0,
         "requests": 0, "estimated_cost_usd": 0, "cache_hit": True, "created_at": at, "status": "pending_review"},
        {"case_id": "D", "model": "precedent-rules", "input_tokens": 900, "output_tokens": 80, "cost_usd": 0,
         "requests": 0, "estimated_cost_usd": 0, "cache_hit": False, "created_at": at, "status": "pending_review"},
    ]  # fmt: skip
    total = build_report(calls_frame(rows)).total.row(0, named=True)
    assert (total["proposals"], total["calls"], total["cache_hits"]) == (4, 6, 1)
    assert total["cache_hit_rate"] == pytest.approx(0.25)
    assert total["llm_cost_usd"] == pytest.approx(0.00132) and total["llm_cost_estimated_usd"] == pytest.approx(0.0006)
