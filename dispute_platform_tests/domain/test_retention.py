"""The retention rule: by age and by count, whichever comes first; never a dispute in flight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispute_platform.domain.retention import RetentionPolicy, SettledDispute, keys_to_archive, partition_bound
from dispute_platform.domain.states import FINAL, Status

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)

disputes = st.lists(
    st.builds(
        SettledDispute,
        case_id=st.from_regex(r"[A-Z]{2}-[0-9]{1,4}", fullmatch=True),
        status=st.sampled_from([s.value for s in Status]),
        settled_at=st.integers(min_value=0, max_value=90 * 24).map(lambda h: NOW - timedelta(hours=h)),
    ),
    max_size=60,
    unique_by=lambda d: d.case_id,
)
policies = st.builds(RetentionPolicy, days=st.integers(0, 60), max_settled=st.integers(0, 40))


def at(hours_ago: float) -> datetime:
    return NOW - timedelta(hours=hours_ago)


@given(disputes, st.data(), policies)
def test_never_archives_a_dispute_in_flight_or_not_final(settled, data, policy):
    in_flight = set(data.draw(st.lists(st.sampled_from([d.case_id for d in settled]) if settled else st.nothing())))
    archived = set(keys_to_archive(settled, in_flight, NOW, policy))
    by_id = {d.case_id: d for d in settled}
    assert not archived & in_flight
    assert all(by_id[k].status in FINAL for k in archived)


@given(disputes, policies)
def test_what_stays_is_exactly_the_newest_max_within_the_window(settled, policy):
    archived = set(keys_to_archive(settled, set(), NOW, policy))
    candidates = [d for d in settled if d.status in FINAL]
    kept = [d for d in candidates if d.case_id not in archived]
    cutoff = NOW - timedelta(days=policy.days)
    assert len(kept) <= policy.max_settled
    assert all(d.settled_at >= cutoff for d in kept)
    # Nothing archived is newer than something kept, unless it was kept out by age (it cannot be).
    for gone in (d for d in candidates if d.case_id in archived):
        if gone.settled_at >= cutoff:
            assert len(kept) == policy.max_settled
            assert all((k.settled_at, k.case_id) > (gone.settled_at, gone.case_id) for k in kept)


@given(disputes, policies)
def test_answer_does_not_depend_on_input_order_and_is_oldest_first(settled, policy):
    forward = keys_to_archive(settled, set(), NOW, policy)
    assert forward == keys_to_archive(list(reversed(settled)), set(), NOW, policy)
    by_id = {d.case_id: d for d in settled}
    stamps = [(by_id[k].settled_at, k) for k in forward]
    assert stamps == sorted(stamps)


def test_age_and_count_whichever_comes_first():
    settled = [
        SettledDispute("old", Status.COMPLETED, at(24 * 31)),  # beyond the 30 days
        SettledDispute("a", Status.EXECUTED, at(3)),
        SettledDispute("b", Status.REJECTED, at(2)),
        SettledDispute("c", Status.INVALID, at(1)),
        SettledDispute("waiting", Status.PENDING_REVIEW, at(24 * 100)),  # never final: stays
        SettledDispute("queued", Status.REJECTED, at(24 * 100)),  # final, but its review run is queued
    ]
    policy = RetentionPolicy(days=30, max_settled=2)
    assert keys_to_archive(settled, {"queued"}, NOW, policy) == ["old", "a"]
    assert keys_to_archive(settled, {"queued"}, NOW, RetentionPolicy(days=30, max_settled=10)) == ["old"]
    assert keys_to_archive(settled, {"queued"}, NOW, RetentionPolicy(days=0, max_settled=10)) == ["old", "a", "b", "c"]


def test_default_settings_bound_a_10k_a_day_platform_near_25k():
    from dispute_platform.settings import Settings

    settings = Settings()
    policy = RetentionPolicy(settings.partition_retention_days, settings.partition_retention_max)
    # Disputes in flight for about a day and a half (half settled after one day, half after two),
    # plus the hour of arrivals between two hourly passes.
    assert partition_bound(10_000, 1.5, policy) + 10_000 / 24 <= 25_000


def test_negative_policy_is_refused():
    with pytest.raises(ValueError):
        RetentionPolicy(days=-1, max_settled=5)
