"""Vacuuming what the archive pass churns when the server's autovacuum is off: autovacuum's rule
(pure), and the real thing on a scratch table of the test server (whatever its autovacuum says)."""

from __future__ import annotations

import time

import psycopg2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispute_platform.store.maintenance import TableRows, due_for_vacuum, vacuum_if_autovacuum_off


def test_due_follows_autovacuums_rule():
    tables = [TableRows("a", live=1_000, dead=250), TableRows("b", live=1_000, dead=251), TableRows("c", live=0, dead=50)]
    assert due_for_vacuum(tables) == ["b"]  # 50 + 20% of 1,000 = 250 is not over; 251 is; 50 of 0 live is not


@given(live=st.integers(0, 10**8), dead=st.integers(0, 10**8))
def test_due_exactly_when_dead_rows_pass_the_threshold(live: int, dead: int):
    assert (due_for_vacuum([TableRows("t", live, dead)]) == ["t"]) == (dead > 50 + 0.2 * live)


def _dead_rows(conn, table: str) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = %s AND schemaname = 'public'", (table,))
        row = cur.fetchone()
        return int(row[0]) if row else 0


@pytest.mark.integration
def test_a_churned_table_is_vacuumed_only_when_the_server_does_not(pg_url):
    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    table = f"churn_{time.time_ns()}"
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE public.{table} (id int)")
            cur.execute(f"INSERT INTO public.{table} SELECT generate_series(1, 1000)")
            cur.execute(f"DELETE FROM public.{table} WHERE id > 100")  # 900 dead rows, 100 live
            cur.execute("SELECT current_setting('autovacuum') = 'on'")
            autovacuum_on = cur.fetchone()[0]
        deadline = time.monotonic() + 10  # the server publishes its row counts within a second or so
        while _dead_rows(conn, table) < 900 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _dead_rows(conn, table) == 900

        done = vacuum_if_autovacuum_off(pg_url, [table, "no_such_table"], "public")

        if autovacuum_on:
            assert done == []  # the server's own autovacuum looks after it
        else:
            assert done == [table]
            with conn.cursor() as cur:
                cur.execute("SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = %s", (table,))
                assert cur.fetchone()[0]
            assert vacuum_if_autovacuum_off(pg_url, [table], "public") == []  # nothing due any more
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS public.{table}")
        conn.close()


def test_an_unreachable_server_is_logged_not_raised():
    assert vacuum_if_autovacuum_off("postgresql://nobody@127.0.0.1:1/none", ["event_logs"]) == []
