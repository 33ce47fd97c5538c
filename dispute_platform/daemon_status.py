"""Is a Dagster daemon picking decisions up? The decision endpoint and the desk record a decision
in Postgres; only the review sensor, which runs inside `dagster-daemon`, turns it into a run. So
they say so when no daemon is alive.

How (Dagster 1.13): the daemon writes a heartbeat per daemon type into the instance's storage
every 30 s (`dagster._daemon.controller.DEFAULT_HEARTBEAT_INTERVAL_SECONDS`);
`DagsterInstance.get_daemon_heartbeats()` returns the latest per type. We read the SENSOR
daemon's (the review sensor runs there) and compare it with now. Not `get_daemon_statuses`:
its tolerance is 30 minutes, too lax to tell a stopped daemon, and it reports nothing for a
daemon type the instance does not list as required. Ours is 30 + 60 s: a daemon that stopped
shows as down within 90 s. Answers are cached a few seconds, so a busy queue page does not read
the instance storage on every request.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

SENSOR_DAEMON = "SENSOR"
HEARTBEAT_TOLERANCE_SECONDS = 60.0
_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class DaemonState:
    running: bool | None  # None: cannot tell (no Dagster instance configured, storage unreadable)
    detail: str
    last_heartbeat_age_seconds: float | None = None


def read_daemon_state(instance: object, now: float | None = None) -> DaemonState:
    """The SENSOR daemon's liveness from the heartbeats in `instance` (a DagsterInstance)."""
    from dagster._daemon.controller import DEFAULT_HEARTBEAT_INTERVAL_SECONDS

    now = time.time() if now is None else now
    heartbeat = instance.get_daemon_heartbeats().get(SENSOR_DAEMON)  # type: ignore[attr-defined]
    if heartbeat is None:
        return DaemonState(False, "no Dagster daemon has ever run on this instance: decisions are recorded but nothing "
                           "executes them until one runs (dispute-platform serve)")  # fmt: skip
    age = now - heartbeat.timestamp
    if age <= DEFAULT_HEARTBEAT_INTERVAL_SECONDS + HEARTBEAT_TOLERANCE_SECONDS:
        return DaemonState(True, f"Dagster daemon alive (last heartbeat {age:.0f} s ago)", age)
    return DaemonState(
        False,
        f"no Dagster daemon is picking decisions up (last heartbeat {age:.0f} s ago): decisions are recorded but "
        "nothing executes them until one runs (dispute-platform serve)",
        age,
    )


class DaemonWatch:
    """Cached daemon state for one process; opens the instance from DAGSTER_HOME on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instance: object | None = None
        self._cached: tuple[float, DaemonState] | None = None

    def __call__(self) -> DaemonState:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < _CACHE_SECONDS:
                return self._cached[1]
            state = self._read()
            self._cached = (time.monotonic(), state)
            return state

    def _read(self) -> DaemonState:
        if not os.environ.get("DAGSTER_HOME"):
            return DaemonState(None, "DAGSTER_HOME is not set: cannot tell whether a Dagster daemon runs")
        try:
            if self._instance is None:
                from dagster import DagsterInstance

                self._instance = DagsterInstance.get()
            return read_daemon_state(self._instance)
        except Exception as exc:  # noqa: BLE001 - reported, never fatal to the endpoint
            self._instance = None
            return DaemonState(None, f"cannot read the Dagster instance: {exc.__class__.__name__}: {str(exc)[:200]}")
