"""Benchmark: the re-embedding backfill against the raw encoder.

    python scripts/bench_reembed.py [--rows 20000] [--repeats 3] [--per-run 16]

Generates N varied, realistic past cases (deterministic, nothing downloaded), loads them into a
temporary PostgreSQL database on 127.0.0.1:5432 (TEST_DATABASE_ADMIN_URL to change), then measures, each
in a fresh child process:

- raw:      `Embedder.encode` over the same texts in the same batches the backfill makes
            (each bucket's keyset pages of --page-size rows), encode calls only;
- backfill: the `resolution_index` asset through Dagster (`materialize`, a range of --per-run
            buckets per run, 64 buckets) into a temporary Chroma folder: Postgres pages, polars
            frames, encoding, Chroma upserts and Postgres marks.

Both exclude the model load (done before the clock starts). Reports rows/s (median of the
repeats), the ratio backfill/raw (target >= 0.8) and each child's peak RSS (target < 2 GB).
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

from dispute_platform.store.scratch import scratch_database  # noqa: E402

ADMIN_URL = os.environ.get("TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

# --- synthetic history ----------------------------------------------------------------------------

TYPES = {
    "duplicate_charge": [
        "I was charged twice for the {plan} on {day}.",
        "Two identical charges of ${amount} appeared on my card for the same invoice.",
        "Your system billed me again for {month} even though the first payment went through.",
        "Double billing on invoice {invoice}: please refund the second charge.",
    ],
    "service_outage": [
        "The service was down for {hours} hours on {day} and we could not reach our dashboards.",
        "Our team lost access during the outage last {weekday}; we expect a credit for the downtime.",
        "API errors for most of {month} {dom} made the product unusable for our customers.",
        "Repeated outages this month ({hours} hours in total) broke our release schedule.",
    ],
    "cancellation_refund": [
        "I cancelled the {plan} on day {dom} of the term and still want my money back.",
        "We closed the account in {month} but the annual renewal of ${amount} was charged anyway.",
        "Cancelled within the trial window; the renewal should never have gone through.",
        "Please refund the unused months after I cancelled on {day}.",
    ],
    "unauthorized": [
        "I do not recognise a charge of ${amount} from {day}; nobody on our team bought this.",
        "Someone used our card for an upgrade to the {plan} without permission.",
        "Unauthorized transaction on the company card, reported to the bank already.",
        "A seat add-on was purchased by a former employee after they left.",
    ],
    "wrong_amount": [
        "I was charged ${amount} but my contract says the {plan} costs less.",
        "The price went up without notice on the {month} invoice.",
        "Billed for {seats} seats although we only have {seats_real} active users.",
        "The discount agreed with sales is missing from invoice {invoice}.",
    ],
    "late_fee": [
        "Please remove the late payment fee; the payment was only {dom} days late.",
        "A ${amount} late fee was added although our bank transfer left on time.",
        "This is the first late fee in years, can it be waived?",
        "Late fee charged while the invoice was still under dispute.",
    ],
    "product_not_received": [
        "We paid for the onboarding package on {day} but the sessions never happened.",
        "The hardware token ordered in {month} never arrived.",
        "Paid ${amount} for a data export that was never delivered.",
        "The premium support we were billed for was never activated.",
    ],
    "general": [
        "I am unhappy with the billing and want someone to look at my account.",
        "The invoices are confusing and I think we are paying for things we do not use.",
        "Support did not answer for a week about the charge on {day}.",
        "Requesting goodwill credit after a frustrating month with the product.",
    ],
}
EXTRA = [
    "Our account manager said this would be fixed last week.",
    "This is urgent, our finance team closes the books on Friday.",
    "We have been customers for {years} years.",
    "I already opened a ticket ({ticket}) without an answer.",
    "Please contact me at the address on file.",
    "The same thing happened in {month} last year.",
    "If this is not resolved we will dispute it with our bank.",
    "We rely on the platform for our daily operations.",
    "Attached is the screenshot of the statement.",
    "Kindly confirm once the correction is made.",
]
ACTIONS = {
    "duplicate_charge": ("full_refund", "Refunded the duplicate charge of ${amount} (POL-002 §1)."),
    "service_outage": ("credit", "Credited {pct}% of the monthly fee for {hours} hours of outage (POL-003 §2)."),
    "cancellation_refund": ("partial_refund", "Refunded the unused months pro rata after the cancellation (POL-004 §2)."),
    "unauthorized": ("escalate", "Escalated to the fraud team: card owner disputes the purchase (POL-005 §1)."),
    "wrong_amount": ("partial_refund", "Refunded the difference to the contracted price (POL-006 §2)."),
    "late_fee": ("full_refund", "Waived the first late fee in 12 months (POL-007 §2)."),
    "product_not_received": ("full_refund", "Refunded the undelivered service (POL-001 §4)."),
    "general": ("deny", "No billing error found; explained the invoice lines (POL-001 §1)."),
}
PLANS = ["Starter plan", "Team plan", "Business plan", "Enterprise plan", "annual subscription", "storage add-on"]
MONTHS = list(calendar.month_name)[1:]  # January ... December (the C locale)
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
SEGMENTS = ["smb", "mid_market", "enterprise", "consumer"]


def synthetic_history(n: int, seed: int = 20260101) -> list[dict]:
    """N past cases as `historical_resolutions.record` documents (varied text, realistic fields)."""
    rng = random.Random(seed)
    start = date(2024, 1, 1)
    records = []
    types = list(TYPES)
    for i in range(n):
        dispute_type = rng.choice(types)
        slots = {
            "plan": rng.choice(PLANS), "day": (start + timedelta(days=rng.randint(0, 700))).isoformat(),
            "amount": f"{rng.choice([9, 19, 25, 49, 99, 199, 490, 1200]) + rng.choice([0, 0.5, 0.99]):.2f}",
            "month": rng.choice(MONTHS), "weekday": rng.choice(WEEKDAYS), "dom": rng.randint(1, 28),
            "hours": rng.randint(1, 72), "invoice": f"INV-{rng.randint(10000, 99999)}", "seats": rng.randint(5, 60),
            "seats_real": rng.randint(1, 5), "years": rng.randint(1, 9), "ticket": f"T-{rng.randint(1000, 9999)}",
            "pct": rng.choice([10, 25, 50]),
        }  # fmt: skip
        sentences = [rng.choice(TYPES[dispute_type])] + rng.sample(EXTRA, rng.randint(0, 4))
        description = " ".join(s.format(**slots) for s in sentences)
        action, summary = ACTIONS[dispute_type]
        amount = Decimal(slots["amount"])
        resolved = {
            "full_refund": amount,
            "partial_refund": (amount / 3).quantize(Decimal("0.01")),
            "credit": (amount / 4).quantize(Decimal("0.01")),
        }
        records.append(
            {
                "case_id": f"BENCH-{i:06d}",
                "customer_id": f"CUST-{rng.randint(1, 4000):05d}",
                "segment": rng.choice(SEGMENTS),
                "dispute_type": dispute_type,
                "amount": str(amount),
                "currency": "USD",
                "description": description,
                "action": action,
                "resolved_amount": str(resolved.get(action, Decimal("0.00"))),
                "citations": [summary[summary.index("(") + 1 : summary.index(")")]],
                "summary": summary.format(**slots),
                "outcome": "resolved",
                "resolved_at": (start + timedelta(days=rng.randint(0, 700))).isoformat(),
                "source": "seed",
            }
        )
    return records


# --- database -------------------------------------------------------------------------------------


def load_history(url: str, rows: int) -> None:
    from psycopg2.extras import Json, execute_values

    from dispute_platform.store.db import Database

    records = synthetic_history(rows)

    def load(cur) -> None:
        execute_values(
            cur,
            "INSERT INTO historical_resolutions (case_id, dispute_type, source, record) VALUES %s",
            [(r["case_id"], r["dispute_type"], r["source"], Json(r)) for r in records],
            page_size=1000,
        )

    db = Database(url)
    db.transact(load)
    db.close()


# --- the two measurements (each in its own process) -----------------------------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child_raw(url: str, page_size: int) -> dict:
    """Encode the backfill's batches (each bucket's keyset pages) with the bare encoder."""
    from dispute_platform.domain.knowledge import HistoricalResolution
    from dispute_platform.resources.vectors import Embedder
    from dispute_platform.store.db import Database
    from dispute_platform.store.history import iter_bucket_pages

    db = Database(url)
    batches = []
    for bucket in range(64):
        for rows in iter_bucket_pages(db, bucket, page_size=page_size):
            batches.append([HistoricalResolution.model_validate(r["record"]).embedding_text() for r in rows])
    db.close()
    embedder = Embedder.shared(None)
    embedder.encode(["warm up the model"])
    started = time.perf_counter()
    n = 0
    for texts in batches:
        n += len(embedder.encode(texts))
    seconds = time.perf_counter() - started
    return {"rows": n, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def child_backfill(url: str, chroma: str, per_run: int, page_size: int) -> dict:
    """The resolution_index asset through Dagster, a range of buckets per run."""
    from dagster import DagsterInstance, materialize

    from dispute_platform.assets.resolution_index import build_resolution_index
    from dispute_platform.domain.reembed import all_buckets
    from dispute_platform.resources.postgres import PostgresResource
    from dispute_platform.resources.vectors import Embedder, VectorStoreResource

    Embedder.shared(None).encode(["warm up the model"])
    resources = {"postgres": PostgresResource(database_url=url), "vectors": VectorStoreResource(chroma_path=chroma)}
    instance = DagsterInstance.ephemeral()
    started = time.perf_counter()
    runs = 0
    for r in all_buckets(per_run):
        result = materialize(
            [build_resolution_index(per_run)],
            instance=instance,
            resources=resources,
            tags={"dagster/asset_partition_range_start": r.start, "dagster/asset_partition_range_end": r.end},
            run_config={
                "ops": {"resolution_index": {"config": {"page_size": page_size}}},
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
            },
        )
        assert result.success
        runs += 1
    seconds = time.perf_counter() - started
    count = resources["vectors"].count(resources["vectors"].resolutions_collection)
    return {"rows": count, "seconds": seconds, "runs": runs, "peak_rss_mb": _peak_rss_mb()}


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace, url: str, work: Path) -> tuple[list[dict], list[dict]]:
    """Raw encoder then backfill, back to back, per repeat (each in a fresh child process)."""
    from dispute_platform.store.db import Database

    raw, backfill = [], []
    for i in range(args.repeats):
        raw.append(run_child(["raw", url, str(args.page_size)]))
        print(
            f"  repeat {i + 1}: raw      {raw[-1]['rows'] / raw[-1]['seconds']:8.1f} rows/s  ({raw[-1]['seconds']:.1f}s)",
            flush=True,
        )
        db = Database(url)
        db.transact(lambda cur: cur.execute("UPDATE historical_resolutions SET embedded_model = NULL, embedded_at = NULL"))
        db.close()
        chroma = work / f"chroma{i}"
        backfill.append(run_child(["backfill", url, str(chroma), str(args.per_run), str(args.page_size)]))
        print(
            f"  repeat {i + 1}: backfill {backfill[-1]['rows'] / backfill[-1]['seconds']:8.1f} rows/s  ({backfill[-1]['seconds']:.1f}s, "
            f"{backfill[-1]['runs']} runs)",
            flush=True,
        )
        shutil.rmtree(chroma, ignore_errors=True)
    return raw, backfill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-run", type=int, default=16, help="buckets per Dagster run")
    parser.add_argument("--page-size", type=int, default=256)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        mode, url, *rest = args.child
        result = child_raw(url, int(rest[0])) if mode == "raw" else child_backfill(url, rest[0], int(rest[1]), int(rest[2]))
        print(json.dumps(result))
        return

    import torch

    print(f"generating {args.rows:,} past cases and loading them into a temporary database ...", flush=True)
    started = time.perf_counter()
    with (
        scratch_database(ADMIN_URL, "reembed_bench", migrate=True) as url,
        tempfile.TemporaryDirectory(prefix="bench_reembed_") as work,
    ):
        load_history(url, args.rows)
        print(
            f"  loaded in {time.perf_counter() - started:.1f}s; torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}",
            flush=True,
        )
        raw, backfill = measure(args, url, Path(work))

    def med(results: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in results)

    raw_rate = statistics.median(r["rows"] / r["seconds"] for r in raw)
    fill_rate = statistics.median(r["rows"] / r["seconds"] for r in backfill)
    ratio = fill_rate / raw_rate
    # Each repeat measures raw then backfill back to back: their ratio is robust to a host whose
    # load drifts between repeats (other processes), so it is reported too.
    paired = statistics.median(
        (f["rows"] / f["seconds"]) / (r["rows"] / r["seconds"]) for r, f in zip(raw, backfill, strict=True)
    )
    raw_rss, fill_rss = max(r["peak_rss_mb"] for r in raw), max(r["peak_rss_mb"] for r in backfill)
    line = "-" * 78
    print()
    print(
        f"re-embedding benchmark: {args.rows:,} past cases, {args.repeats} repeat(s), page {args.page_size}, {args.per_run} buckets/run"
    )
    print(line)
    print(f"{'path':<34}{'rows':>8}{'median s':>10}{'rows/s':>10}{'peak RSS MB':>14}")
    print(line)
    print(
        f"{'raw encoder (Embedder.encode)':<34}{raw[0]['rows']:>8,}{med(raw, 'seconds'):>10.1f}{raw_rate:>10.1f}{raw_rss:>14.0f}"
    )
    print(
        f"{'backfill (resolution_index runs)':<34}{backfill[0]['rows']:>8,}{med(backfill, 'seconds'):>10.1f}{fill_rate:>10.1f}{fill_rss:>14.0f}"
    )
    print(line)
    print(
        f"throughput ratio backfill/raw: {ratio:.2f} (medians), {paired:.2f} (median of paired repeats)  "
        f"(target >= 0.80: {'met' if min(ratio, paired) >= 0.8 else 'NOT met'})"
    )
    print(f"host load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    print(
        f"peak RSS: {max(raw_rss, fill_rss):.0f} MB  (target < 2048 MB: {'met' if max(raw_rss, fill_rss) < 2048 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
