"""Which settled disputes leave Dagster's partition set: a pure rule, no I/O.

One dispute is one dynamic partition, and Dagster slows down as the key list grows (issue 13: the
key listing, range runs and the UI's partition status all scale with it). So a dispute that is
settled for good (`states.FINAL`) is archived after a retention window: when it settled more than
`retention_days` ago, or when it is not among the newest `retention_max` settled disputes,
whichever comes first. The count keeps a busy month from blowing the bound; the age keeps a quiet
platform from holding history it no longer needs in the UI.

A dispute in flight (any status outside `FINAL`, or one the caller knows still has work queued
in Dagster) is never archived, whatever its age. Archiving only removes the Dagster key and its
Dagster history; Postgres keeps every row (see store/retention.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispute_platform.domain.states import FINAL


@dataclass(frozen=True)
class SettledDispute:
    """A dispute as the rule sees it: its key, its status, and when it reached that status."""

    case_id: str
    status: str
    settled_at: datetime


@dataclass(frozen=True)
class RetentionPolicy:
    days: int  # PARTITION_RETENTION_DAYS
    max_settled: int  # PARTITION_RETENTION_MAX

    def __post_init__(self) -> None:
        if self.days < 0 or self.max_settled < 0:
            raise ValueError("retention days and count must be zero or more")


def _newest_first(dispute: SettledDispute) -> tuple[datetime, str]:
    return (dispute.settled_at, dispute.case_id)


def keys_to_archive(
    settled: Iterable[SettledDispute], in_flight: Collection[str], now: datetime, policy: RetentionPolicy
) -> list[str]:
    """The case ids to archive, oldest settled first (so a pass cut short has done the oldest).

    Only disputes in a final status and not named in `in_flight` are candidates. Of those, the
    newest `policy.max_settled` that settled within `policy.days` of `now` stay; the rest go.
    Ties in `settled_at` are broken by case id, so the answer does not depend on input order."""
    cutoff = now - timedelta(days=policy.days)
    candidates = sorted((d for d in settled if d.status in FINAL and d.case_id not in in_flight), key=_newest_first, reverse=True)
    archive = [d for rank, d in enumerate(candidates) if rank >= policy.max_settled or d.settled_at < cutoff]
    return [d.case_id for d in reversed(archive)]


def partition_bound(per_day: int, in_flight_days: float, policy: RetentionPolicy) -> int:
    """The most keys the partition set holds in steady state: the disputes in flight (arrivals of
    `in_flight_days` days) plus the settled ones retention keeps (at most `max_settled`, at most
    `days` worth of arrivals)."""
    return round(per_day * in_flight_days) + min(policy.max_settled, per_day * policy.days)
