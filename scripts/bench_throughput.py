#!/usr/bin/env python3
"""Benchmark 1: disputes per second from the SQS queue to `ai_proposal`, through real Dagster.

The platform: a real `dagster-daemon` (the integration tests' deployment harness: Postgres-backed
instance, queued run coordinator with 2 concurrent runs, the default run launcher, so every run is
a new process), the real `sqs_dispute_sensor` on a local SQS endpoint (own process: the one the CLI
starts, dispute_platform/local_sqs.py, or with --endpoint moto stock moto_server),
the platform's Postgres database, a Chroma folder seeded with the policies and the seed history,
the precedent provider, and a world of N valid cases (bundled cases that validate, cloned with new
ids into a temporary SANDBOX_DATA file). N events are queued; the clock runs from the first send
until the last intake run has finished (its 4 cap checks included). A one-event warm-up run goes
first on each deployment, so the code server is loaded and the OS caches are warm.

Two references, measured in the same run:
  (a) plain loop: the same functions in one Python process, no Dagster: store the event, enrich
      (CRM, billing, payments), embed (one batch, as the asset does), retrieve from the same Chroma,
      facts -> prompt -> precedent -> guardrails -> caps (workflow.propose), evaluate and record the
      cap checks, and the Postgres writes and reviewer notifications (.eml + SQS review message) the
      assets make. Reported with its parts, so a reader can take the writes out.
  (b) Dagster's floor: three throwaway assets with the same dynamic partitions and single-run
      backfill policy, empty bodies, materialised for the same N partitions in one run, in process,
      on a Postgres-backed instance. The last one has `ai_proposal`'s event shape: one
      materialization per dispute and the four cap checks declared on it, one evaluation per
      dispute and check.
Target: platform wall time <= 1.25 x (loop + floor).

Also reported: where the platform's time goes (sensor ticks, run queue and launch, process start +
imports, each step from the runs' event logs), and batching: the whole measurement again with
DISPUTES_PER_RUN = each of --batches (one deployment each).

A default run (n=500, the platform once at the default DISPUTES_PER_RUN, each reference twice) takes
about 8-9 minutes on this 2-core machine under load; --batches adds a deployment per value.

Each change can be measured apart through the environment, which the deployment inherits:
EMBEDDING_RUNTIME=torch (sentence-transformers in the runs), SQS_RECEIVERS=1 (one receive at a
time), SQS_HAND_OVER=false (a tick receives up to SQS_MAX_MESSAGES_PER_TICK before it asks for
runs), --endpoint moto, DAGSTER_EVENT_BATCH_SIZE=0 (Dagster writes a step's per-partition events one
by one; the CLI sets 1000, see dispute_platform/local.py). The platform and the floor share them.

Usage: python scripts/bench_throughput.py [--n 500] [--repeats 1] [--batches 50,500] [--reference-repeats 2] [--endpoint platform|moto]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Dagster instances loaded here install the workflow-log handler: keep it out of the shared logs/.
os.environ.setdefault("LOG_DIR", tempfile.mkdtemp(prefix="bench-throughput-logs-"))

import psutil  # noqa: E402
from dagster import DagsterEventType, DagsterInstance, RunsFilter  # noqa: E402

from dispute_platform.domain.world import BUNDLED_WORLD  # noqa: E402
from dispute_platform.local import scratch_queues  # noqa: E402
from dispute_platform.resources.sqs import SQSResource  # noqa: E402
from dispute_platform.store.db import Database  # noqa: E402
from dispute_platform.store.scratch import scratch_database  # noqa: E402
from scripts.bench_sensor import moto_server, table  # noqa: E402

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SETTLED = ("pending_review", "invalid", "blocked", "proposal_failed", "review_escalated")
TARGET_RATIO = 1.25


# --- the world ------------------------------------------------------------------------------------


def valid_case_ids() -> list[str]:
    """Bundled cases that pass validation with a bare event (only the case id), by the domain rules."""
    from dispute_platform.domain.context import enrich
    from dispute_platform.domain.models import BillingRecord, CrmRecord, DisputeEvent, PaymentRecord
    from dispute_platform.domain.world import SandboxWorld

    world = SandboxWorld.load()
    valid = []
    for case in world.cases:
        account = world.accounts_by_id[case.customer_id]
        charges = world.charges_by_customer.get(case.customer_id, [])
        ids = {c.charge_id for c in charges}
        context = enrich(
            DisputeEvent(case_id=case.case_id),
            CrmRecord(case=case, account=account, incidents=world.incidents_for(account)),
            BillingRecord(
                subscription=world.subscription_for(case.customer_id),
                invoices=world.invoices_by_customer.get(case.customer_id, []),
            ),
            PaymentRecord(charges=charges, refunds=world.refunds_for(ids), disputes=world.disputes_for(ids)),
        )
        if context.verdict.valid:
            valid.append(case.case_id)
    return valid


def build_world(path: Path, prefixes: list[str], n: int) -> dict[str, list[str]]:
    """The bundled world plus, for each prefix, n clones of valid cases with new ids."""
    data = json.loads(BUNDLED_WORLD.read_text())
    by_id = {c["case_id"]: c for c in data["cases"]}
    valid = valid_case_ids()
    ids: dict[str, list[str]] = {}
    for prefix in prefixes:
        ids[prefix] = []
        for i in range(n):
            clone = dict(by_id[valid[i % len(valid)]])
            clone["case_id"] = f"{prefix}-{i:05d}"
            data["cases"].append(clone)
            ids[prefix].append(clone["case_id"])
    path.write_text(json.dumps(data))
    return ids


def bare_events(case_ids: list[str]) -> list[dict]:
    return [{"case_id": c, "event_id": f"evt-{c}"} for c in case_ids]


def seed_chroma(folder: Path) -> None:
    from dispute_platform.resources.vectors import VectorStoreResource
    from dispute_platform.settings import REPO_ROOT
    from dispute_platform.workflow.knowledge import load_policies, read_seed_history

    vectors = VectorStoreResource(chroma_path=str(folder))
    load_policies(vectors, REPO_ROOT / "policies")
    vectors.upsert_resolutions(read_seed_history())


# --- the platform through a real daemon -----------------------------------------------------------


@dataclass
class RunTimes:
    run_id: str
    partitions: int
    created: float
    starting: float | None = None
    started: float | None = None
    ended: float | None = None
    steps: dict[str, float] = field(default_factory=dict)
    planned: int = 0  # ASSET_MATERIALIZATION_PLANNED + check planned events, written when the run is created

    def phase(self, a: float | None, b: float | None) -> float:
        return (b - a) if a is not None and b is not None else float("nan")


@dataclass
class PlatformResult:
    per_run: int
    n: int
    wall: float
    t0: float
    send_seconds: float
    first_proposal: float
    last_proposal: float
    runs: list[RunTimes]
    ticks: list[tuple[float, float, int]]  # (start, seconds, runs requested)
    received_lines: list[str]
    statuses: dict[str, int]


def _statuses(db: Database, prefix: str) -> dict[str, int]:
    rows = db.fetch_all(
        "SELECT status, COUNT(*) AS n FROM workflow_states WHERE case_id LIKE %s GROUP BY status", (prefix + "-%",)
    )
    return {r["status"]: r["n"] for r in rows}


def _wait(predicate, timeout: float, what: str, poll: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def _run_times(instance: DagsterInstance, record) -> RunTimes:
    run = record.dagster_run
    tags = run.tags
    times = RunTimes(
        run_id=run.run_id,
        partitions=0,
        created=record.create_timestamp.timestamp(),
        started=record.start_time,
        ended=record.end_time,
    )
    step_start: dict[str, float] = {}
    partitions = set()
    for entry in instance.all_logs(run.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind in (DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED):
            times.planned += 1
        if kind == DagsterEventType.RESOURCE_INIT_STARTED:
            step_start["(resources)"] = entry.timestamp
        elif kind == DagsterEventType.RESOURCE_INIT_SUCCESS and "(resources)" in step_start:
            times.steps["resource init"] = entry.timestamp - step_start["(resources)"]
        elif kind == DagsterEventType.RUN_STARTING:
            times.starting = entry.timestamp
        elif kind == DagsterEventType.RUN_START:
            times.started = entry.timestamp
        elif kind == DagsterEventType.STEP_START:
            step_start[event.step_key] = entry.timestamp
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE) and event.step_key in step_start:
            times.steps[event.step_key] = entry.timestamp - step_start[event.step_key]
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            if materialization.asset_key.to_user_string() == "ai_proposal" and materialization.partition:
                partitions.add(materialization.partition)
    times.partitions = len(partitions) or (1 if run.tags.get("dagster/partition") else 0)
    _ = tags
    return times


def _sensor_ticks(instance: DagsterInstance, after: float) -> list[tuple[float, float, int]]:
    for state in instance.all_instigator_state():
        if state.instigator_name == "sqs_dispute_sensor":
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)

            def requested(t) -> int:  # 1.13 keeps a sensor's requests in run_keys / reserved_run_ids
                data = t.tick_data
                return max(len(data.run_ids or []), len(data.run_keys or []), len(data.reserved_run_ids or []))

            return sorted((t.timestamp, (t.tick_data.end_timestamp or t.timestamp) - t.timestamp, requested(t)) for t in ticks)
    return []


def measure_platform(args, *, per_run: int, prefixes: list[str], ids: dict[str, list[str]], world: Path,
                     seeded: Path, endpoint: str) -> list[PlatformResult]:  # fmt: skip
    """One deployment with DISPUTES_PER_RUN=per_run; a warm-up, then one measurement per prefix."""
    from dispute_platform_tests.integration.daemon import deployment

    results = []
    queues = scratch_queues(endpoint)
    sqs = SQSResource(endpoint_url=endpoint, dispute_events_queue_url=queues["events"], dead_letter_queue_url=queues["dlq"],
                      human_review_queue_url=queues["review"])  # fmt: skip
    with (
        scratch_database(args.admin_url, "dp_bench_tp", migrate=True) as url,
        tempfile.TemporaryDirectory(prefix="bench-tp-") as home,
    ):
        db = Database(url)
        extra = {"DISPUTES_PER_RUN": str(per_run), "LOG_DIR": str(Path(home) / "logs"), "STEP_RETRY_DELAY_SECONDS": "1"}
        leftovers: list[psutil.Process] = []
        with deployment(url, sqs, Path(home) / "dep", seeded_chroma=seeded, world=world, extra_env=extra) as dep:
            os.environ["DAGSTER_POSTGRES_URL"] = dep.env["DAGSTER_POSTGRES_URL"]
            instance = DagsterInstance.from_config(dep.env["DAGSTER_HOME"])
            try:
                warm = ids[f"warmup{per_run}"]
                sqs.send_many(bare_events(warm))
                _wait(lambda: sum(_statuses(db, warm[0].rsplit("-", 1)[0]).get(s, 0) for s in SETTLED) >= len(warm),
                      300, f"the warm-up dispute (DISPUTES_PER_RUN={per_run})")  # fmt: skip
                _wait(lambda: all(r.dagster_run.is_finished for r in instance.get_run_records()), 120, "the warm-up run")
                for prefix in prefixes:
                    cases = ids[prefix]
                    t0 = time.time()
                    sqs.send_many(bare_events(cases))
                    sent = time.time() - t0
                    first: list[float] = []

                    def settled(prefix=prefix, cases=cases, first=first, t0=t0) -> bool:
                        counts = _statuses(db, prefix)
                        done = sum(counts.get(s, 0) for s in SETTLED)
                        if done and not first:
                            first.append(time.time() - t0)
                        return done >= len(cases)

                    _wait(settled, 900, f"{len(cases)} proposals ({prefix})")
                    last = time.time() - t0

                    def runs_done(t0=t0) -> list:
                        records = instance.get_run_records(RunsFilter(created_after=_dt(t0)))
                        return records if records and all(r.dagster_run.is_finished for r in records) else []

                    records = _wait(runs_done, 300, "the intake runs to finish")
                    runs = sorted((_run_times(instance, r) for r in records), key=lambda r: r.created)
                    wall = max(r.ended or 0 for r in runs) - t0
                    results.append(
                        PlatformResult(
                            per_run=per_run, n=len(cases), wall=wall, t0=t0, send_seconds=sent, first_proposal=first[0] if first else last,
                            last_proposal=last, runs=runs, ticks=_sensor_ticks(instance, t0 - 1),
                            received_lines=[line for line in dep.log.read_text(errors="replace").splitlines()
                                            if "received " in line and "new dispute" in line and "received 0 " not in line],
                            statuses=_statuses(db, prefix),
                        )
                    )  # fmt: skip
                    print(f"  DISPUTES_PER_RUN={per_run} {prefix}: {len(cases)} disputes in {wall:.1f} s "
                          f"({len(cases) / wall:.1f}/s), {len(runs)} runs, statuses {results[-1].statuses}", flush=True)  # fmt: skip
            finally:
                leftovers = psutil.Process(dep.daemon.pid).children(recursive=True)
                instance.dispose()
        for proc in leftovers:  # code servers and run workers the daemon started, by pid
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        db.close()
    return results


def _dt(ts: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, tz=UTC)


# --- reference (a): the plain loop ----------------------------------------------------------------


def settings_runtime() -> str:
    """The embedding runtime the platform's runs use (EMBEDDING_RUNTIME), so the loop uses it too."""
    from dispute_platform.settings import get_settings

    return get_settings().embedding_runtime


def measure_loop(args, case_ids: list[str], world: Path, seeded: Path, endpoint: str, workdir: Path) -> dict[str, float]:
    from concurrent.futures import ThreadPoolExecutor

    from dispute_platform.domain.states import PROPOSAL_MAY_RUN, Status
    from dispute_platform.resources.email import OutboxEmail
    from dispute_platform.resources.limits import Limits
    from dispute_platform.resources.llm import PrecedentProposer
    from dispute_platform.resources.postgres import PostgresResource
    from dispute_platform.resources.providers import SandboxBilling, SandboxCRM, SandboxPayments
    from dispute_platform.resources.vectors import VectorStoreResource
    from dispute_platform.settings import get_settings
    from dispute_platform.store import repo
    from dispute_platform.store.proposals import save_proposal
    from dispute_platform.store.transitions import transition
    from dispute_platform.workflow.caps import evaluate_stored
    from dispute_platform.workflow.enrich import Providers, enrich_event
    from dispute_platform.workflow.intake import parse_body
    from dispute_platform.workflow.notify import notify_reviewers
    from dispute_platform.workflow.propose import propose, query_text

    parts: dict[str, float] = defaultdict(float)

    @contextmanager
    def part(name: str):
        started = time.perf_counter()
        yield
        parts[name] += time.perf_counter() - started

    chroma = workdir / "chroma-loop"
    shutil.copytree(seeded, chroma)
    queues = scratch_queues(endpoint)
    sqs = SQSResource(endpoint_url=endpoint, dispute_events_queue_url=queues["events"], human_review_queue_url=queues["review"])
    with scratch_database(args.admin_url, "dp_bench_loop", migrate=True) as url:
        db = Database(url)
        postgres = PostgresResource(database_url=url)
        sandbox = {"sandbox_data": str(world), "postgres": postgres}
        providers = Providers(crm=SandboxCRM(**sandbox), billing=SandboxBilling(**sandbox), payments=SandboxPayments(**sandbox))
        vectors = VectorStoreResource(chroma_path=str(chroma), embedding_runtime=settings_runtime())
        proposer, limits = PrecedentProposer(), Limits().proposal_limits()
        email = OutboxEmail(outbox_dir=str(workdir / "outbox-loop"))
        settings = get_settings()
        with part("one-time: load the world, the embedding model, Chroma"):
            providers.crm.world.cases_by_id  # noqa: B018
            vectors.embedder.encode(["warm up"])
            vectors.collection("company_policies")
        events = bare_events(case_ids)
        started = time.perf_counter()
        with part("postgres writes"):
            accepted = [repo.AcceptedEvent(parse_body(json.dumps(e)), e, None, None) for e in events]
            db.transact(lambda cur: repo.record_accepted(cur, accepted))
            for e in events:  # raw_case: one status move and audit row per dispute
                db.transact(lambda cur, k=e["case_id"]: (transition(cur, k, Status.RUNNING, "raw_case"),
                                                         repo.audit(cur, k, "raw_case", "materialized")))  # fmt: skip
        contexts = {}
        with part("enrich (CRM, billing, payments; 8 disputes at a time, as the asset)"):
            with ThreadPoolExecutor(max_workers=24) as fetch_pool, ThreadPoolExecutor(max_workers=8) as pool:
                results = list(
                    pool.map(lambda e: (e.case_id, enrich_event(e, providers, fetch_pool)), [a.event for a in accepted])
                )
        with part("postgres writes"):
            for key, enriched in results:
                contexts[key] = enriched
                validation = enriched.verdict.model_dump(mode="json") | {"valid": enriched.verdict.valid}
                db.transact(lambda cur, key=key, enriched=enriched, validation=validation: (
                    transition(cur, key, Status.ENRICHED if enriched.verdict.valid else Status.INVALID, "enriched_context",
                                    customer_id=enriched.crm.case.customer_id, dispute_type=enriched.crm.case.dispute_type,
                                    segment=enriched.crm.account.segment.value, disputed_amount=enriched.crm.case.amount,
                                    currency=enriched.crm.case.currency,
                                    crm_data=enriched.crm.model_dump(mode="json") | {"event": enriched.event.model_dump(mode="json")},
                                    billing_data=enriched.billing.model_dump(mode="json"),
                                    payment_data=enriched.payments.model_dump(mode="json"), validation=validation),
                    repo.audit(cur, key, "enriched_context", "valid", {"issues": validation["issues"]}),
                ))  # fmt: skip
        keys = [k for k, c in contexts.items() if c.verdict.valid]
        with part("embed the queries (one batch)"):
            vectors_by_key = dict(zip(keys, vectors.embedder.encode([query_text(contexts[k]) for k in keys]), strict=True))
        outcomes = {}
        with part("retrieve + facts + prompt + precedent + guardrails + caps"):
            for key in keys:
                outcomes[key] = propose(contexts[key], vectors, proposer, db, limits, vectors_by_key[key], Decimal("0"))
        for key in keys:
            outcome = outcomes[key]
            document = outcome.proposal.model_dump(mode="json")
            with part("postgres writes"):
                version = db.transact(lambda cur, key=key, document=document, outcome=outcome: (
                    v := save_proposal(cur, key, document, status=Status.PENDING_REVIEW, allowed_from=PROPOSAL_MAY_RUN,
                                       reason=None, run_id=None),
                    repo.add_cost(cur, key, f"llm:{outcome.proposal.model}", outcome.proposal.cost_usd, llm=True),
                    repo.audit(cur, key, "ai_proposal", "proposed", {"version": v}),
                )[0])  # fmt: skip
            with part("reviewer notifications (.eml + SQS review message)"):
                notify_reviewers(db, email, sqs, settings, contexts[key], outcome, version, run_id=None)
        with part("cap checks (evaluate and record)"):
            evaluate_stored(db, keys, limits.caps, None)
        total = time.perf_counter() - started
        done = db.fetch_one("SELECT COUNT(*) AS n FROM proposals")["n"]
        db.close()
    if done != len(case_ids):
        raise SystemExit(f"the loop proposed {done} of {len(case_ids)}")
    return {"total": total, **parts}


# --- reference (b): Dagster's floor ---------------------------------------------------------------


def measure_floor(args, n: int, workdir: Path) -> float:
    import yaml
    from dagster import BackfillPolicy, DynamicPartitionsDefinition, MaterializeResult, asset, materialize

    from dispute_platform.local import dagster_yaml
    from dispute_platform.store.db import sqlalchemy_url
    from scripts.bench_check_events import per_dispute_proposal

    parts = DynamicPartitionsDefinition(name="bench_floor")
    single = BackfillPolicy.single_run()

    @asset(partitions_def=parts, backfill_policy=single)
    def floor_raw_case():  # no annotation: this module's annotations are strings
        return MaterializeResult()

    @asset(partitions_def=parts, backfill_policy=single, deps=[floor_raw_case])
    def floor_enriched_context():  # no annotation: this module's annotations are strings
        return MaterializeResult()

    # ai_proposal's shape: one materialization per dispute and, for the four cap checks declared on
    # the asset, one evaluation per dispute and check (Dagster writes each of these on its own).
    floor_ai_proposal = per_dispute_proposal("floor_ai_proposal", parts, deps=[floor_enriched_context])

    keys = [f"FLOOR-{i:05d}" for i in range(n)]
    with scratch_database(args.admin_url, "dp_bench_floor") as url:
        home = workdir / "floor-home"
        home.mkdir(exist_ok=True)
        os.environ["DAGSTER_POSTGRES_URL"] = sqlalchemy_url(url)
        config = {k: v for k, v in dagster_yaml().items() if k != "python_logs"}
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
        instance = DagsterInstance.from_config(str(home))
        instance.add_dynamic_partitions("bench_floor", keys)
        started = time.perf_counter()
        result = materialize(
            [floor_raw_case, floor_enriched_context, floor_ai_proposal], instance=instance,
            tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},  # the events are stored all the same
        )  # fmt: skip
        seconds = time.perf_counter() - started
        assert result.success
        instance.dispose()
    return seconds


# --- report ---------------------------------------------------------------------------------------


def median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def report_platform(result: PlatformResult) -> None:
    runs = result.runs
    print(f"\nWhere the time goes, DISPUTES_PER_RUN={result.per_run} ({result.n} disputes, wall {result.wall:.1f} s, "
          f"{len(runs)} runs, at most 2 at once):\n")  # fmt: skip
    t0 = result.t0
    ticks = [t for t in result.ticks if t[2] > 0]
    rows = []
    for i, r in enumerate(runs, 1):
        checks = sum(v for k, v in r.steps.items() if "within" in k)
        rows.append([
            str(i), str(r.partitions), str(r.planned), f"{r.created - t0:.1f}", f"{r.phase(r.created, r.starting):.1f}",
            f"{r.phase(r.starting, r.started):.1f}", f"{r.steps.get('resource init', float('nan')):.1f}",
            f"{r.steps.get('raw_case', float('nan')):.1f}", f"{r.steps.get('enriched_context', float('nan')):.1f}",
            f"{r.steps.get('ai_proposal', float('nan')):.1f}", f"{checks:.1f}",
            f"{r.phase(r.created, r.ended):.1f}", f"{(r.ended or t0) - t0:.1f}",
        ])  # fmt: skip
    print(table(["run", "disputes", "planned events", "created +s", "queued + launch", "process start + imports", "resource init",
                 "raw_case", "enriched_context", "ai_proposal", "4 checks", "run total", "ended +s"], rows))  # fmt: skip
    busy = [t for t in result.ticks if t[0] >= t0 - 1 and t[0] <= t0 + result.wall]
    print(f"\n  +s = seconds after the first event was sent ({result.send_seconds:.1f} s to send all {result.n}).")
    print(
        "  'queued + launch' includes writing the planned events: Dagster writes them while it creates the run, inside the "
        "sensor's tick, one per asset and partition unless DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS is set."
    )
    print(f"  sensor: {len(busy)} ticks while the work ran, {sum(t[1] for t in busy):.1f} s of tick time; "
          f"{len(ticks)} of them requested runs, at " + ", ".join(f"+{t[0] - t0:.1f} s ({t[1]:.1f} s, {t[2]} runs)" for t in ticks))  # fmt: skip
    for line in result.received_lines[-max(1, len(ticks)) :]:
        print("  sensor log:", line.split(" - ")[-1][:160])
    print(f"  first proposal at +{result.first_proposal:.1f} s, last at +{result.last_proposal:.1f} s, "
          f"last run ended at +{result.wall:.1f} s")  # fmt: skip
    steps = defaultdict(float)
    for r in runs:
        steps["queued + launch"] += r.phase(r.created, r.starting)
        steps["process start + imports"] += r.phase(r.starting, r.started)
        for k, v in r.steps.items():
            steps["4 checks" if "within" in k else k] += v
    print("\n  summed over runs (run-seconds; two runs overlap):", ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="disputes per measurement")
    parser.add_argument("--repeats", type=int, default=1, help="platform measurements at the default DISPUTES_PER_RUN")
    parser.add_argument(
        "--batches",
        default="",
        help="more DISPUTES_PER_RUN values to compare, e.g. 50,500 (one "
        "deployment and one measurement each: about 4-5 minutes each for n=500 on 2 busy cores)",
    )
    parser.add_argument("--reference-repeats", type=int, default=2)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--endpoint", choices=["platform", "moto"], default="platform",
                        help="platform: the local endpoint the CLI starts (local_sqs); moto: stock moto_server")  # fmt: skip
    args = parser.parse_args()
    from dispute_platform.settings import get_settings

    default_batch = get_settings().disputes_per_run
    batches = sorted({int(b) for b in args.batches.split(",") if b.strip()} | {default_batch})
    from dispute_platform.local import DAGSTER_ENV_DEFAULTS

    for name, value in DAGSTER_ENV_DEFAULTS.items():  # as the CLI publishes them: platform and floor alike
        os.environ.setdefault(name, value)
    settings = get_settings()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; n = {args.n}; "
          f"DISPUTES_PER_RUN default {default_batch}, compared: {batches}", flush=True)  # fmt: skip
    print(f"SQS endpoint: {args.endpoint}; embeddings on {settings.embedding_runtime}; sensor: {settings.sqs_receivers} "
          f"receives in flight, hand over at a run's worth: {settings.sqs_hand_over}; Dagster: "
          + ", ".join(f"{k}={os.environ.get(k)}" for k in (*DAGSTER_ENV_DEFAULTS, "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"))
          + "\n", flush=True)  # fmt: skip
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        work = Path(tmp)
        seeded = work / "seeded-chroma"
        t = time.perf_counter()
        seed_chroma(seeded)
        print(f"setup: seeded Chroma in {time.perf_counter() - t:.1f} s", flush=True)
        prefixes_by_batch = {b: [f"TP{b}R{r}" for r in range(args.repeats if b == default_batch else 1)] for b in batches}
        all_prefixes = [p for ps in prefixes_by_batch.values() for p in ps] + ["LOOP"]
        ids = build_world(work / "world.json", all_prefixes, args.n)
        ids |= build_world_warmups(work / "world.json", batches)
        print(f"setup: world with {len(all_prefixes)} x {args.n} cloned valid cases", flush=True)
        with moto_server(args.endpoint) as endpoint:
            platform: dict[int, list[PlatformResult]] = {}
            for batch in [default_batch, *[b for b in batches if b != default_batch]]:
                platform[batch] = measure_platform(args, per_run=batch, prefixes=prefixes_by_batch[batch], ids=ids,
                                                   world=work / "world.json", seeded=seeded, endpoint=endpoint)  # fmt: skip
            loops = []
            for r in range(args.reference_repeats):
                loop_ids = [f"{c}L{r}" for c in ids["LOOP"]]
                extend_world(work / "world.json", ids["LOOP"], loop_ids)
                loops.append(measure_loop(args, loop_ids, work / "world.json", seeded, endpoint, work / f"loop{r}"))
                print(f"  plain loop {r + 1}: {loops[-1]['total']:.1f} s", flush=True)
        floors = []
        for r in range(args.reference_repeats):
            floors.append(measure_floor(args, args.n, work))
            print(f"  Dagster floor {r + 1}: {floors[-1]:.1f} s", flush=True)

    loop_total = median([loop["total"] for loop in loops])
    floor_total = median(floors)
    default_runs = platform[default_batch]
    wall = median([p.wall for p in default_runs])
    print("\n" + "=" * 100)
    print(
        f"Benchmark 1: {args.n} disputes from SQS to ai_proposal (medians; platform x{len(default_runs)}, references x{args.reference_repeats})\n"
    )
    rows = [
        [
            "platform (daemon, sensor, launched runs)",
            f"{wall:.1f}",
            f"{args.n / wall:.1f}",
            ", ".join(f"{p.wall:.1f}" for p in default_runs),
        ],
        [
            "(a) plain loop, same functions + writes",
            f"{loop_total:.1f}",
            f"{args.n / loop_total:.1f}",
            ", ".join(f"{loop['total']:.1f}" for loop in loops),
        ],
        [
            "(b) Dagster floor, empty bodies, 1 run",
            f"{floor_total:.1f}",
            f"{args.n / floor_total:.1f}",
            ", ".join(f"{f:.1f}" for f in floors),
        ],
        ["(a) + (b)", f"{loop_total + floor_total:.1f}", f"{args.n / (loop_total + floor_total):.1f}", ""],
    ]
    print(table(["", "seconds", "disputes/s", "each measurement"], rows))
    ratio = wall / (loop_total + floor_total)
    print(f"\nplatform / (loop + floor) = {ratio:.2f} (target <= {TARGET_RATIO}): {'MET' if ratio <= TARGET_RATIO else 'MISSED'}")

    print("\nThe plain loop's parts (median of each):\n")
    keys = [k for k in loops[0] if k != "total"]
    print(table(["part", "seconds"], [[k, f"{median([loop[k] for loop in loops]):.2f}"] for k in keys]))

    typical = sorted(default_runs, key=lambda p: p.wall)[len(default_runs) // 2]
    report_platform(typical)

    if len(batches) == 1:
        print(f"\nBatching: only DISPUTES_PER_RUN={default_batch} measured (add --batches 50,500 to compare).")
        print(f"\nload average {os.getloadavg()[0]:.2f} at the end; the script took {time.monotonic() - started:.0f} s")
        return 0
    print("\nBatching: the same measurement with DISPUTES_PER_RUN set (one deployment each):\n")
    rows = []
    for batch in batches:
        results = platform[batch]
        w = median([p.wall for p in results])
        runs = median([len(p.runs) for p in results])
        imports = median([median([r.phase(r.starting, r.started) for r in p.runs]) for p in results])
        rows.append(
            [str(batch), f"{runs:g}", f"{w:.1f}", f"{args.n / w:.1f}", f"{imports:.1f}", f"{w / (loop_total + floor_total):.2f}"]
        )
    print(
        table(
            ["DISPUTES_PER_RUN", "runs", "wall s", "disputes/s", "process start + imports per run (s)", "ratio to (a)+(b)"], rows
        )
    )
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end; the script took {time.monotonic() - started:.0f} s")
    return 0


def build_world_warmups(path: Path, batches: list[int]) -> dict[str, list[str]]:
    """One extra clone per deployment for its warm-up dispute."""
    data = json.loads(path.read_text())
    by_id = {c["case_id"]: c for c in data["cases"]}
    valid = valid_case_ids()
    ids = {}
    for batch in batches:
        clone = dict(by_id[valid[0]])
        clone["case_id"] = f"WARM{batch}-{uuid.uuid4().hex[:6]}"
        data["cases"].append(clone)
        ids[f"warmup{batch}"] = [clone["case_id"]]
    path.write_text(json.dumps(data))
    return ids


def extend_world(path: Path, originals: list[str], new_ids: list[str]) -> None:
    data = json.loads(path.read_text())
    by_id = {c["case_id"]: c for c in data["cases"]}
    for old, new in zip(originals, new_ids, strict=True):
        clone = dict(by_id[old])
        clone["case_id"] = new
        data["cases"].append(clone)
    path.write_text(json.dumps(data))


if __name__ == "__main__":
    sys.exit(main())
