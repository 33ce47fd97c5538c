"""Issue 5: re-embedding the past cases as a batched backfill over 64 hash buckets.

Real Postgres (the session database), real Chroma folders, the real packaged model."""

from __future__ import annotations

import random
import shutil
import string
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_schedule_context, build_sensor_context, materialize

from dispute_platform.domain.knowledge import HistoricalResolution
from dispute_platform.domain.reembed import BUCKET_KEYS, BUCKETS, all_buckets, bucket_index, bucket_of, run_ranges
from dispute_platform.operations import RANGE_END, RANGE_START
from dispute_platform.resources.postgres import PostgresResource
from dispute_platform.resources.vectors import Embedder, VectorStoreResource, packaged_model_path
from dispute_platform.store import history
from dispute_platform.store.history import changed_model_counts, iter_bucket_pages
from dispute_platform.workflow.knowledge import load_seed_history
from dispute_platform.workflow.reembed import current_model_identity
from dispute_platform_tests.definitions import embedding_model_sensor, resolution_index, weekly_reembedding

pytestmark = pytest.mark.integration


def _resources(pg_url: str, chroma: Path, model: str | None = None) -> dict:
    return {
        "postgres": PostgresResource(database_url=pg_url),
        "vectors": VectorStoreResource(chroma_path=str(chroma), embedding_model=model),
    }


def _run(instance, resources, start: str, end: str, *, only_stale: bool = False, tags: dict | None = None):
    result = materialize(
        [resolution_index],
        instance=instance,
        resources=resources,
        tags={RANGE_START: start, RANGE_END: end, **(tags or {})},
        run_config={"ops": {"resolution_index": {"config": {"only_stale": only_stale}}}},
    )
    assert result.success
    return result


def _snapshot(vectors: VectorStoreResource) -> dict[str, tuple[str, dict, np.ndarray]]:
    coll = vectors.collection(vectors.resolutions_collection)
    got = coll.get(include=["documents", "metadatas", "embeddings"])
    return {
        i: (d, m, np.asarray(e))
        for i, d, m, e in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True)
    }


def _assert_same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for case_id in a:
        assert a[case_id][0] == b[case_id][0], case_id
        assert a[case_id][1] == b[case_id][1], case_id
        np.testing.assert_allclose(a[case_id][2], b[case_id][2], atol=1e-6, rtol=0)


def _random_ids(n: int) -> list[str]:
    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits + "_.-üéß日本"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 64))) for _ in range(n)] + [
        "",
        "CASE-1001",
        "HIST-0001",
        "a" * 200,
    ]


def test_bucket_is_the_same_in_python_and_postgres(db):
    ids = _random_ids(2000)
    rows = db.fetch_all("SELECT x AS id, get_byte(decode(md5(x), 'hex'), 0) %% 64 AS b FROM unnest(%s::text[]) AS x", (ids,))
    assert {r["id"]: r["b"] for r in rows} == {i: bucket_of(i) for i in ids}
    # and the stored column (migration 005) says the same for inserted rows
    records = [HistoricalResolution(case_id=i, dispute_type="general", action="deny") for i in ids[:300] if i]
    db.transact(lambda cur: history.upsert_historical(cur, records))
    stored = db.fetch_all("SELECT case_id, bucket FROM historical_resolutions")
    assert {r["case_id"]: r["bucket"] for r in stored} == {r.case_id: bucket_of(r.case_id) for r in records}
    assert set(bucket_of(i) for i in ids) == set(range(BUCKETS))  # 2,000 ids reach every bucket


def test_keyset_pages_stream_a_bucket(db):
    load_seed_history(db)
    bucket = db.fetch_one("SELECT bucket FROM historical_resolutions GROUP BY bucket ORDER BY COUNT(*) DESC LIMIT 1")["bucket"]
    pages = list(iter_bucket_pages(db, bucket, page_size=2))
    ids = [r["case_id"] for page in pages for r in page]
    expected = [
        r["case_id"]
        for r in db.fetch_all("SELECT case_id FROM historical_resolutions WHERE bucket = %s ORDER BY case_id", (bucket,))
    ]
    assert ids == expected and len(ids) > 2
    assert all(len(p) <= 2 for p in pages)


def test_backfill_in_several_runs_equals_one_run_and_rerunning_changes_nothing(db, pg_url, tmp_path):
    seeded = load_seed_history(db)
    assert seeded >= 300
    instance = DagsterInstance.ephemeral()

    one = _resources(pg_url, tmp_path / "one")
    single = _run(instance, one, BUCKET_KEYS[0], BUCKET_KEYS[-1])
    marks = db.fetch_all("SELECT case_id, embedded_model, embedded_at FROM historical_resolutions ORDER BY case_id")
    identity = one["vectors"].embedder.identity
    assert {m["embedded_model"] for m in marks} == {identity}

    many = _resources(pg_url, tmp_path / "many")
    ranges = all_buckets(16)
    assert len(ranges) == 4
    for r in ranges:
        _run(instance, many, r.start, r.end)

    first, second = _snapshot(one["vectors"]), _snapshot(many["vectors"])
    assert len(first) == seeded
    _assert_same(first, second)
    assert {m["model"] for _, m, _ in first.values()} == {identity}

    # Re-running changes nothing: same ids, documents, metadata, vectors; Postgres marks untouched.
    # (One run of the plan again: the others were shown equal to a single run above.)
    _run(instance, many, ranges[0].start, ranges[0].end)
    _assert_same(second, _snapshot(many["vectors"]))
    assert db.fetch_all("SELECT case_id, embedded_model, embedded_at FROM historical_resolutions ORDER BY case_id") == marks

    # Per-partition metadata: rows, seconds, rows/s and the model identity, for every bucket.
    events = single.get_asset_materialization_events()
    by_partition = {e.partition: e.event_specific_data.materialization.metadata for e in events}
    assert sorted(by_partition) == BUCKET_KEYS
    counts = {
        r["bucket"]: r["n"] for r in db.fetch_all("SELECT bucket, COUNT(*) AS n FROM historical_resolutions GROUP BY bucket")
    }
    for key, meta in by_partition.items():
        assert meta["rows"].value == counts.get(bucket_index(key), 0)
        assert meta["model"].value == identity
        assert meta["seconds"].value >= 0 and "rows_per_second" in meta
    # Progress is visible in the run's logs.
    messages = [e.message for e in instance.all_logs(single.run_id) if e.message]
    assert any("rows/s" in m and "bucket" in m for m in messages)
    assert any(m.startswith("re-embedded ") for m in messages)


def test_orphans_in_chroma_are_pruned_by_the_backfill(db, pg_url, tmp_path):
    load_seed_history(db)
    instance = DagsterInstance.ephemeral()
    res = _resources(pg_url, tmp_path / "chroma")
    gone = "HIST-0007"
    key = BUCKET_KEYS[bucket_of(gone)]
    _run(instance, res, key, key)
    assert gone in _snapshot(res["vectors"])
    db.transact(lambda cur: cur.execute("DELETE FROM historical_resolutions WHERE case_id = %s", (gone,)))
    result = _run(instance, res, key, key)
    meta = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["pruned"].value == 1
    assert gone not in _snapshot(res["vectors"])


def test_model_change_makes_the_sensor_request_the_reembedding(db, pg_url, tmp_path):
    load_seed_history(db)
    instance = DagsterInstance.ephemeral()
    chroma = tmp_path / "chroma"
    res = _resources(pg_url, chroma)
    identity = res["vectors"].embedder.identity
    assert current_model_identity(None) == identity == Embedder(None).identity
    # Every row embedded by the current model (the sensor reads only Postgres).
    db.transact(lambda cur: cur.execute("UPDATE historical_resolutions SET embedded_model = %s", (identity,)))

    def tick(resources):
        return embedding_model_sensor(build_sensor_context(instance=instance, resources=resources))

    assert isinstance(tick(res), SkipReason)

    # 1. Rows whose vector another model made (marked as a previous model would have left them).
    marked = [3, 4, 5, 40]
    db.transact(lambda cur: cur.execute(
        "UPDATE historical_resolutions SET embedded_model = 'all-MiniLM-L6-v2@0123456789abcdef' WHERE bucket = ANY(%s)", (marked,)
    ))  # fmt: skip
    stale = changed_model_counts(db, identity)
    requests = tick(res)
    assert all(isinstance(r, RunRequest) for r in requests)
    assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests] == [(r.start, r.end) for r in run_ranges(stale, 16)]
    assert {
        k for r in requests for k in BUCKET_KEYS[bucket_index(r.tags[RANGE_START]) : bucket_index(r.tags[RANGE_END]) + 1]
    } == {BUCKET_KEYS[b] for b in stale}
    assert all(r.run_config["ops"]["resolution_index"]["config"]["only_stale"] for r in requests)
    for request in requests:
        _run(instance, res, request.tags[RANGE_START], request.tags[RANGE_END], only_stale=True)
    assert changed_model_counts(db, identity) == {}
    assert isinstance(tick(res), SkipReason)

    # 2. A copy of the model folder: same name, same weights -> same identity, nothing to do ...
    #    (eight buckets of history keep this part short)
    db.transact(lambda cur: cur.execute("DELETE FROM historical_resolutions WHERE bucket >= 8"))
    copy = tmp_path / "models" / "all-MiniLM-L6-v2"
    shutil.copytree(packaged_model_path(), copy)
    copied = _resources(pg_url, chroma, model=str(copy))
    assert isinstance(tick(copied), SkipReason)
    # ... until a weight file changes: every bucket with rows is requested, and re-embedded.
    (copy / "onnx").mkdir()
    (copy / "onnx" / "extra.onnx").write_bytes(b"changed weights")
    new_identity = current_model_identity(str(copy))
    assert new_identity != identity and new_identity.startswith("all-MiniLM-L6-v2@")
    requests = tick(copied)
    with_rows = {r["bucket"] for r in db.fetch_all("SELECT DISTINCT bucket FROM historical_resolutions")}
    requested = {
        bucket_index(k)
        for r in requests
        for k in BUCKET_KEYS[bucket_index(r.tags[RANGE_START]) : bucket_index(r.tags[RANGE_END]) + 1]
    }
    assert requested == with_rows
    assert len({r.run_key for r in requests}) == len(requests)
    for request in requests:
        _run(instance, copied, request.tags[RANGE_START], request.tags[RANGE_END], only_stale=True)
    assert {r["embedded_model"] for r in db.fetch_all("SELECT DISTINCT embedded_model FROM historical_resolutions")} == {
        new_identity
    }
    remaining = {r["case_id"] for r in db.fetch_all("SELECT case_id FROM historical_resolutions")}
    entries = _snapshot(copied["vectors"])
    assert remaining <= set(entries) and {entries[c][1]["model"] for c in remaining} == {new_identity}
    assert isinstance(tick(copied), SkipReason)


def test_weekly_schedule_requests_every_bucket_in_runs_of_the_policy_size():
    context = build_schedule_context(scheduled_execution_time=datetime(2026, 1, 4, 3, 0))
    requests = list(weekly_reembedding(context))
    assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in requests] == [
        ("b00", "b15"),
        ("b16", "b31"),
        ("b32", "b47"),
        ("b48", "b63"),
    ]
    assert not any(r.run_config["ops"]["resolution_index"]["config"]["only_stale"] for r in requests)
    assert len({r.run_key for r in requests}) == 4


def test_run_ranges_split_at_gaps_and_at_the_run_size():
    counts = {0: 3, 1: 2, 2: 1, 5: 7, 6: 1, 7: 1, 8: 1, 63: 2, 10: 0}
    got = [(r.start, r.end, r.rows) for r in run_ranges(counts, 2)]
    assert got == [("b00", "b01", 5), ("b02", "b02", 1), ("b05", "b06", 8), ("b07", "b08", 2), ("b63", "b63", 2)]
    assert sum(len(r.keys) for r in all_buckets(16)) == BUCKETS
    with pytest.raises(ValueError):
        bucket_index("b64")
