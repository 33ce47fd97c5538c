"""Issue 16: receives in flight while batches are stored, and a tick that hands over early,
against real PostgreSQL and the local SQS endpoint. The rule under test: a message is deleted
only after the transaction that stored its event committed, whichever thread received it."""

from __future__ import annotations

import threading

import psycopg2
import pytest

from dispute_platform.resources.sqs import SQSResource
from dispute_platform.store.db import libpq_url
from dispute_platform.workflow.intake import ingest_from_queue
from dispute_platform_tests.conftest import drain

pytestmark = pytest.mark.integration


def _events(n: int, prefix: str = "PIPE") -> list[dict]:
    return [{"case_id": f"{prefix}-{i:04d}", "event_id": f"evt-{prefix}-{i:04d}", "amount": 10 + i} for i in range(n)]


class CheckedDeletes(SQSResource):
    """Before every delete, asks Postgres on its own connection (so it sees committed rows only)
    whether each message's event is stored; records any message deleted too early."""

    pg_url: str

    def model_post_init(self, context: object) -> None:
        self._early: list[str] = []
        self._deleted: list[str] = []
        self._threads: set[str] = set()
        self._lock = threading.Lock()

    def receive_once(self, want, deadline, queue_url=None):
        with self._lock:
            self._threads.add(threading.current_thread().name)
        return super().receive_once(want, deadline, queue_url)

    def delete(self, messages, queue_url=None):
        ids = [m.message_id for m in messages]
        with psycopg2.connect(libpq_url(self.pg_url)) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT message_id FROM dispute_platform.dispute_events WHERE message_id = ANY(%s) "
                "UNION SELECT message_id FROM dispute_platform.rejected_events WHERE message_id = ANY(%s)",
                (ids, ids),
            )
            stored = {row[0] for row in cur.fetchall()}
        conn.close()
        with self._lock:
            self._early += [i for i in ids if i not in stored]
            self._deleted += ids
        return super().delete(messages, queue_url)


def _checked(sqs: SQSResource, pg_url: str) -> CheckedDeletes:
    return CheckedDeletes(**sqs.model_dump(), pg_url=pg_url)


@pytest.mark.parametrize("receivers", [1, 3])
def test_every_event_is_stored_once_before_its_message_is_deleted(db, sqs, pg_url, receivers):
    events = _events(95)
    bodies = [*events, "not json at all", '{"customer_id": "no case id"}']
    sqs.send_many(bodies)
    checked = _checked(sqs, pg_url)

    stats = ingest_from_queue(db, checked, max_messages=1000, budget_seconds=30, receivers=receivers)

    assert (stats.received, stats.stored, stats.rejected, stats.duplicates) == (97, 95, 2, 0)
    stored = db.fetch_all("SELECT case_id, COUNT(*) AS n FROM dispute_events GROUP BY case_id")
    assert {r["case_id"]: r["n"] for r in stored} == {e["case_id"]: 1 for e in events}
    assert checked._early == []  # nothing deleted before its commit
    assert len(checked._deleted) == len(set(checked._deleted)) == 97
    assert drain(sqs, sqs.dispute_events_queue_url) == []
    if receivers > 1:
        assert len(checked._threads) > 1  # the receives really ran side by side


def test_a_tick_hands_over_once_a_runs_worth_is_stored(db, sqs, pg_url):
    # Rejected bodies and a second copy of five events first: they do not count towards the run.
    sqs.send_many(["not json", "not json either", *_events(5), *_events(120)])
    stats = ingest_from_queue(db, sqs, max_messages=1000, budget_seconds=30, receivers=3, hand_over_at=30)
    # Exactly a run's worth: the receives in flight never asked for more than was still missing.
    assert stats.stored == 30 and stats.received >= 32
    assert db.fetch_one("SELECT COUNT(*) AS n FROM dispute_events")["n"] == stats.stored
    left = drain(sqs, sqs.dispute_events_queue_url)
    assert len(left) == 127 - stats.received  # the rest waits on the queue for the next tick


def test_a_failed_store_deletes_nothing_of_its_batch_and_hands_back_what_it_never_tried(db, sqs, pg_url, monkeypatch):
    from dispute_platform.workflow import intake

    events = _events(60)
    sqs.send_many(events)
    calls = {"n": 0}
    real = intake.ingest_batch

    def flaky(db_, sqs_, messages, stats):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("database went away")
        return real(db_, sqs_, messages, stats)

    monkeypatch.setattr(intake, "ingest_batch", flaky)
    checked = _checked(sqs.model_copy(update={"visibility_timeout_seconds": 30}), pg_url)
    with pytest.raises(RuntimeError, match="database went away"):
        ingest_from_queue(db, checked, max_messages=1000, budget_seconds=30, receivers=3)

    stored = db.fetch_one("SELECT COUNT(*) AS n FROM dispute_events")["n"]
    assert stored == 20 and checked._early == [] and len(checked._deleted) == 20
    # Batches received but never tried are visible again at once; the failed batch stays hidden
    # for its visibility timeout (an outage must not become a burst of redeliveries).
    # Three receives were in flight at once, so when the third store failed, later batches had
    # been received: without the hand-back they would be hidden too and fewer than 30 would show.
    visible_now = drain(sqs, sqs.dispute_events_queue_url)
    assert len(visible_now) == 60 - 20 - 10


# --- SQS refusing a delete or a dead-letter copy --------------------------------------------------


class ExpiredHandles(SQSResource):
    """Deletes with receipt handles SQS no longer honours (the visibility timeout ran out before
    the delete): the endpoint refuses every one of them, as SQS does."""

    def delete(self, messages, queue_url=None):
        import dataclasses

        expired = [dataclasses.replace(m, receipt_handle=f"expired-{m.message_id}") for m in messages]
        return super().delete(expired, queue_url)


def test_a_refused_delete_is_counted_and_the_redelivery_stores_nothing_twice(db, sqs, pg_url):
    import time

    events = _events(12, "DEL")
    sqs.send_many([*events, "not json"])
    expired = ExpiredHandles(**sqs.model_dump() | {"visibility_timeout_seconds": 1})

    first = ingest_from_queue(db, expired, max_messages=1000, budget_seconds=30)

    assert (first.received, first.stored, first.rejected, first.delete_failures) == (13, 12, 1, 13)
    time.sleep(1.5)  # the messages were not deleted: they come back once their visibility timeout ends
    again = ingest_from_queue(db, sqs, max_messages=1000, budget_seconds=30)
    assert (again.received, again.stored, again.duplicates, again.delete_failures) == (13, 0, 12, 0)
    stored = db.fetch_all("SELECT case_id, COUNT(*) AS n FROM dispute_events GROUP BY case_id")
    assert {r["case_id"]: r["n"] for r in stored} == {e["case_id"]: 1 for e in events}
    assert db.fetch_one("SELECT COUNT(*) AS n FROM rejected_events")["n"] == 1  # same body, same message: one row
    assert drain(sqs, sqs.dispute_events_queue_url) == []


def test_a_failed_dead_letter_copy_keeps_the_body_in_postgres_and_deletes_the_message(db, sqs, pg_url):
    events = _events(3, "DLQ")
    sqs.send_many([*events, "not json", '{"customer_id": "no case id"}'])
    no_dlq = sqs.model_copy(update={"dead_letter_queue_url": sqs.dead_letter_queue_url + "-deleted"})

    stats = ingest_from_queue(db, no_dlq, max_messages=1000, budget_seconds=30)

    assert (stats.received, stats.stored, stats.rejected, stats.delete_failures) == (5, 3, 2, 0)
    rejected = db.fetch_all("SELECT body, reason, dead_lettered FROM rejected_events ORDER BY id")
    assert sorted(r["body"] for r in rejected) == sorted(['{"customer_id": "no case id"}', "not json"])
    assert not any(r["dead_lettered"] for r in rejected) and all(r["reason"] for r in rejected)
    assert drain(sqs, sqs.dispute_events_queue_url) == []  # deleted all the same: redelivery would fail alike
    assert drain(sqs, sqs.dead_letter_queue_url) == []
