"""The code location's definitions as tests (and benchmark scripts) use them: built by
`build_definitions` from the settings of the moment, as Dagster builds them when it loads the
code location.

`from dispute_platform_tests.definitions import ai_proposal` gives the asset built from the
settings in force when the importing module is imported. Sensors and schedules are looked up
when they are called, so a tick sees the settings a test set just before it (monkeypatch and
`get_settings.cache_clear()`). `current()` is the whole Definitions for the settings in force.
"""

from __future__ import annotations

from typing import Any

from dagster import AssetsDefinition, Definitions

from dispute_platform.definitions import build_definitions
from dispute_platform.settings import Settings, get_settings

_built: tuple[Settings, Definitions] | None = None


def current() -> Definitions:
    """The definitions built from `get_settings()` (built again once the settings change)."""
    global _built
    settings = get_settings()
    if _built is None or _built[0] is not settings:
        _built = (settings, build_definitions(settings))
    return _built[1]


def asset(name: str) -> AssetsDefinition:
    return current().get_assets_def(name)


def assets(*names: str) -> list[AssetsDefinition]:
    return [asset(name) for name in names]


class _Instigator:
    """A sensor or schedule by name, built from the settings in force when it is called."""

    def __init__(self, name: str, kind: str):
        self.name, self.kind = name, kind

    def definition(self) -> Any:
        repository = current().get_repository_def()
        return repository.get_sensor_def(self.name) if self.kind == "sensor" else repository.get_schedule_def(self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.definition()(*args, **kwargs)


SENSORS = {"sqs_dispute_sensor", "review_decision_sensor", "embedding_model_sensor", "calibration_sensor"}
SCHEDULES = {"weekly_reembedding", "daily_cost_report", "hourly_dispute_archive"}


def __getattr__(name: str) -> Any:
    if name in SENSORS:
        return _Instigator(name, "sensor")
    if name in SCHEDULES:
        return _Instigator(name, "schedule")
    if name.startswith("_"):
        raise AttributeError(name)
    try:
        return asset(name)
    except Exception as exc:  # noqa: BLE001 - an unknown name is an import error, as for a module
        raise AttributeError(f"no asset, sensor or schedule named {name!r} in the definitions") from exc
