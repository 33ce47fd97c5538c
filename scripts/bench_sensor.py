#!/usr/bin/env python3
"""Benchmark 4: the SQS sensor ingesting a full queue.

N events (default 1,000) are queued on a real local SQS endpoint, in its own process, and the
real `sqs_dispute_sensor` is evaluated tick after tick (as the daemon evaluates it, with a
Postgres-backed Dagster instance and the platform's Postgres database) until the queue is empty
and every event is stored. Between ticks the script applies the sensor's partition additions, as
the daemon does; that is timed apart, it is not part of a tick.

Two endpoints, measured in the same run: the platform's local endpoint (what the CLI starts:
moto with the receive fixes of dispute_platform/local_sqs.py; the target is measured on it) and,
as the reference, stock moto (`moto_server`), whose receives walk the whole queue per message
handed out. --endpoint picks one.

Reported per repeat and as medians over --repeats (default 3): seconds of ticks, ticks needed,
events per second of tick time, and where a tick's time goes (receive calls, summed over the
receive threads, which overlap; and on the tick's own thread Postgres, SQS delete, the rest).
Target: <= 30 s of ticks.

Settings are the platform's (SQS_MAX_MESSAGES_PER_TICK, SQS_TICK_BUDGET_SECONDS, SQS_RECEIVERS,
DISPUTES_PER_RUN: a tick hands over once that many new events are stored; long-poll wait of 1 s);
override them through the environment, e.g. SQS_RECEIVERS=1 DISPUTES_PER_RUN=1000 for the
sequential tick of before.

Usage: python scripts/bench_sensor.py [--events 1000] [--repeats 3] [--endpoint both|platform|moto] [--admin-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

import yaml  # noqa: E402
from dagster import DagsterInstance, SensorResult, build_sensor_context  # noqa: E402

from dispute_platform.local import dagster_yaml, scratch_queues  # noqa: E402
from dispute_platform.resources.postgres import PostgresResource  # noqa: E402
from dispute_platform.resources.sqs import SQSResource  # noqa: E402
from dispute_platform.settings import get_settings  # noqa: E402
from dispute_platform.store.db import Database, sqlalchemy_url  # noqa: E402
from dispute_platform.store.scratch import scratch_database  # noqa: E402
from dispute_platform_tests.definitions import sqs_dispute_sensor  # noqa: E402

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_SECONDS = 30.0

# --- timers around the sensor's collaborators ----------------------------------------------------

SPENT: dict[str, float] = defaultdict(float)
_SPENT_LOCK = threading.Lock()


@contextmanager
def timed(bucket: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        with _SPENT_LOCK:  # receives are timed from several threads
            SPENT[bucket] += time.perf_counter() - started


class TimedSQS(SQSResource):
    def receive_once(self, want, deadline, queue_url=None):
        with timed("sqs receive calls (summed over threads)"):
            return super().receive_once(want, deadline, queue_url)

    def delete(self, messages, queue_url=None):
        with timed("sqs delete"):
            return super().delete(messages, queue_url)

    def send_dead_letter(self, body, reason):
        with timed("sqs dead-letter"):
            return super().send_dead_letter(body, reason)


class TimedDatabase(Database):
    def transact(self, fn, **kwargs):
        with timed("postgres"):
            return super().transact(fn, **kwargs)


class TimedPostgres(PostgresResource):
    @cached_property
    def db(self) -> Database:
        return TimedDatabase(self.url)


def time_partition_checks(instance: DagsterInstance) -> None:
    """Time the sensor's partition-existence checks on this instance (build_sensor_context wants
    a real DagsterInstance, so the method is wrapped in place)."""
    check = instance.has_dynamic_partition

    def timed_check(*args, **kwargs):
        with timed("partition check (instance)"):
            return check(*args, **kwargs)

    instance.has_dynamic_partition = timed_check  # type: ignore[method-assign]


# --- services ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server(kind: str = "platform"):
    """An SQS endpoint in its own process: "platform" is the local endpoint the CLI starts
    (dispute_platform/local_sqs.py), "moto" is stock `moto_server`."""
    port = free_port()
    if kind == "moto":
        command = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]
    else:
        command = [sys.executable, "-m", "dispute_platform.local_sqs", "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                            env=os.environ | {"PYTHONPATH": str(REPO)})  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def dagster_instance(home: Path, dagster_db_url: str) -> DagsterInstance:
    os.environ["DAGSTER_POSTGRES_URL"] = sqlalchemy_url(dagster_db_url)
    config = {k: v for k, v in dagster_yaml().items() if k != "python_logs"}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return DagsterInstance.from_config(str(home))


def events(n: int, run: str) -> list[dict]:
    """Dispute events shaped like the bundled samples, each for its own case."""
    from dispute_platform.domain.world import BUNDLED_WORLD

    samples = json.loads(BUNDLED_WORLD.read_text())["sample_events"]
    out = []
    for i in range(n):
        body = dict(samples[i % len(samples)])
        body["case_id"] = f"BENCH-{run}-{i:05d}"
        body["event_id"] = f"evt-{run}-{i:05d}"
        out.append(body)
    return out


# --- one measurement -----------------------------------------------------------------------------


@dataclass
class Measurement:
    tick_seconds: list[float] = field(default_factory=list)
    partition_add_seconds: float = 0.0
    stored: int = 0
    spent: dict[str, float] = field(default_factory=dict)
    one_listing_seconds: float = 0.0  # what-if: every partition key in one call, after the run

    @property
    def total(self) -> float:
        return sum(self.tick_seconds)


def measure(endpoint: str, admin_url: str, n: int, repeat: int) -> Measurement:
    queues = scratch_queues(endpoint)
    sqs = TimedSQS(endpoint_url=endpoint, dispute_events_queue_url=queues["events"], dead_letter_queue_url=queues["dlq"])
    with (
        scratch_database(admin_url, "dp_bench_sensor", migrate=True) as url,
        scratch_database(admin_url, "dp_bench_dagster") as dagster_url,
    ):
        db = Database(url)
        with tempfile.TemporaryDirectory(prefix="bench-sensor-") as home:
            instance = dagster_instance(Path(home), dagster_url)
            time_partition_checks(instance)
            SQSResource(endpoint_url=endpoint, dispute_events_queue_url=queues["events"]).send_many(events(n, f"r{repeat}"))
            postgres = TimedPostgres(database_url=url)
            SPENT.clear()
            result = Measurement()
            cursor = None
            for _ in range(50):
                context = build_sensor_context(instance=instance, cursor=cursor,
                                               resources={"sqs": sqs, "postgres": postgres})  # fmt: skip
                started = time.perf_counter()
                answer = sqs_dispute_sensor(context)
                result.tick_seconds.append(time.perf_counter() - started)
                if isinstance(answer, SensorResult):
                    cursor = answer.cursor
                    added = time.perf_counter()
                    for request in answer.dynamic_partitions_requests or []:
                        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
                    result.partition_add_seconds += time.perf_counter() - added
                result.stored = db.fetch_one("SELECT COUNT(*) AS n FROM dispute_events")["n"]
                if result.stored >= n and sqs.approximate_depth() == 0:
                    break
            result.spent = dict(SPENT)
            started = time.perf_counter()
            listed = instance.get_dynamic_partitions("disputes")
            result.one_listing_seconds = time.perf_counter() - started
            assert len(listed) == n
            instance.dispose()
        db.close()
    if result.stored != n:
        raise SystemExit(f"only {result.stored} of {n} events were stored after {len(result.tick_seconds)} ticks")
    return result


def calibrate_endpoint(endpoint: str, depths=(1000, 500, 100, 10)) -> dict[int, float]:
    """The endpoint's own service time for one 10-message receive at a given queue depth (median of
    5 receives on a scratch queue), so the endpoint's share of a tick can be told from the platform's.
    moto rebuilds its list of visible messages on every receive: its cost grows with the depth;
    AWS SQS answers in about the same time whatever the depth."""
    import boto3

    client = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    body = json.dumps(events(1, "cal")[0])
    out = {}
    for depth in depths:
        queue = client.create_queue(QueueName=f"bench-cal-{depth}-{uuid.uuid4().hex[:6]}")["QueueUrl"]
        for start in range(0, depth, 10):
            client.send_message_batch(
                QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": body} for i in range(min(10, depth - start))]
            )
        times = []
        for _ in range(5):
            started = time.perf_counter()
            reply = client.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0)
            times.append(time.perf_counter() - started)
            assert reply.get("Messages")
        out[depth] = statistics.median(times)
        client.delete_queue(QueueUrl=queue)
    return out


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


ENDPOINTS = {"platform": "the platform's local endpoint (local_sqs: moto with its receives fixed)",
             "moto": "stock moto_server"}  # fmt: skip


def measure_endpoint(kind: str, args) -> tuple[list[Measurement], dict[int, float]]:
    runs: list[Measurement] = []
    with moto_server(kind) as endpoint:
        print(f"SQS endpoint: {ENDPOINTS[kind]}, own process, at {endpoint}; Postgres: {args.admin_url.rsplit('@', 1)[-1]}")
        calibration = calibrate_endpoint(endpoint)
        for repeat in range(args.repeats):
            runs.append(measure(endpoint, args.admin_url, args.events, repeat))
            m = runs[-1]
            print(f"  repeat {repeat + 1}: {m.total:.2f} s in {len(m.tick_seconds)} ticks "
                  f"({', '.join(f'{t:.2f}' for t in m.tick_seconds)} s)", flush=True)  # fmt: skip
    return runs, calibration


def report(kind: str, runs: list[Measurement], calibration: dict[int, float], events: int) -> float:
    rows = []
    for i, m in enumerate(runs, 1):
        rows.append([str(i), f"{m.total:.2f}", str(len(m.tick_seconds)), f"{events / m.total:.0f}",
                     f"{m.partition_add_seconds:.2f}"])  # fmt: skip
    median_total = statistics.median(m.total for m in runs)
    rows.append(["median", f"{median_total:.2f}", f"{statistics.median(len(m.tick_seconds) for m in runs):g}",
                 f"{events / median_total:.0f}", f"{statistics.median(m.partition_add_seconds for m in runs):.2f}"])  # fmt: skip
    print(f"\n{events} queued events ingested by sqs_dispute_sensor, {ENDPOINTS[kind]}:\n")
    print(table(["repeat", "tick seconds", "ticks", "events/s", "daemon partition adds (s, not in ticks)"], rows))

    typical = sorted(runs, key=lambda m: m.total)[len(runs) // 2]  # the median repeat, whose parts add up
    receive = "sqs receive calls (summed over threads)"
    own = {k: v for k, v in typical.spent.items() if k != receive}
    breakdown = [[bucket, f"{seconds:.2f}", f"{100 * seconds / typical.total:.0f}%"] for bucket, seconds in sorted(own.items())]
    rest = typical.total - sum(own.values())
    breakdown.append(
        ["waiting for receives, parsing, Dagster context, other", f"{rest:.2f}", f"{100 * rest / typical.total:.0f}%"]
    )
    print(f"\nWhere the tick time goes (the median repeat, {typical.total:.2f} s), on the tick's own thread:\n")
    print(table(["part", "seconds", "share"], breakdown))
    print(f"  beside it, the receive calls took {typical.spent.get(receive, 0.0):.2f} s summed over the receive threads (they overlap "
          "each other and the storing)")  # fmt: skip
    print("\nThe endpoint's own time for one 10-message receive, by queue depth (same run, scratch queues):\n")
    print(table(["queue depth", "seconds per receive", "receives to drain 10 at a time"],
                [[str(d), f"{t:.3f}", str(d // 10)] for d, t in calibration.items()]))  # fmt: skip
    return median_total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--endpoint", choices=["both", "platform", "moto"], default="both")
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL server to create throw-away databases on")
    args = parser.parse_args()
    settings = get_settings()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    print(
        f"sensor settings: {settings.sqs_max_messages_per_tick} messages/tick max, tick budget "
        f"{settings.sqs_tick_budget_seconds:g} s, {settings.sqs_receivers} receives in flight, long-poll wait 1 s, "
        + (
            f"hand over at {settings.disputes_per_run} new events (DISPUTES_PER_RUN)\n"
            if settings.sqs_hand_over
            else "no hand-over\n"
        )
    )
    kinds = ["platform", "moto"] if args.endpoint == "both" else [args.endpoint]
    medians = {}
    for kind in kinds:
        runs, calibration = measure_endpoint(kind, args)
        medians[kind] = (runs, calibration)
    print("\n" + "=" * 100 + f"\nBenchmark 4: {args.events} queued events ingested by sqs_dispute_sensor")
    totals = {kind: report(kind, runs, calibration, args.events) for kind, (runs, calibration) in medians.items()}
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    for kind, total in totals.items():
        verdict = "MET" if total <= TARGET_SECONDS else "MISSED"
        label = "target" if kind == "platform" else "reference"
        print(f"{label}: {ENDPOINTS[kind]}: median {total:.2f} s of ticks ({args.events / total:.0f} events/s); "
              f"<= {TARGET_SECONDS:.0f} s: {verdict}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
