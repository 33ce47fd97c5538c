"""Progress for long CLI work, one helper for every command (setup, run, import-cfpb, reembed).

On a terminal: a rich bar with counts, rate and time left. Elsewhere (CI logs, files): a counted
line now and then (`label: 1,200/20,000 rows (6%), 310 rows/s`), never a flood of redraws.

    with counted("embedding past cases", total=20_000, unit="rows") as bar:
        for batch in batches:
            ...
            bar.advance(len(batch))

    step(console, 2, 4, "database: 5 migrations applied")   # "[2/4] database: ..."

`watch(process, poll, ...)` shows the progress of work another process does, by polling a count
(a SQL count, say) until the process ends.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_default_console: Console | None = None


def default_console() -> Console:
    global _default_console
    if _default_console is None:
        _default_console = Console(width=None if sys.stdout.isatty() else 160)
    return _default_console


class CountedProgress:
    """A counter with a display. `advance(n)`, `update(completed=, total=)`, `describe(text)`."""

    def __init__(self, label: str, total: int | None, console: Console, unit: str, every_seconds: float, every_fraction: float):
        self.label = label
        self.total = total
        self.completed = 0
        self.unit = unit
        self.console = console
        self._started = time.monotonic()
        self._interactive = console.is_terminal
        self._every_seconds = every_seconds
        self._every_fraction = every_fraction
        self._last_line_at = self._started
        self._last_line_fraction = 0.0
        self._progress: Progress | None = None
        self._task = None
        self._detail = ""

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> CountedProgress:
        if self._interactive:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[detail]}"),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, rate="", detail="")
        return self

    def stop(self) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()
            self._progress = None
        self._line(final=True)

    # -- counting -----------------------------------------------------------------------------
    def advance(self, n: int = 1) -> None:
        self.update(completed=self.completed + n)

    def update(self, *, completed: int | None = None, total: int | None = None, detail: str | None = None) -> None:
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if detail is not None:
            self._detail = detail
        if self._progress is not None:
            self._refresh()
        else:
            self._maybe_line()

    def describe(self, detail: str) -> None:
        self.update(detail=detail)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self._started
        return self.completed / elapsed if elapsed > 0 else 0.0

    def _rate_text(self) -> str:
        return f"{self.rate:,.0f} {self.unit}/s".strip() if self.completed else ""

    def _refresh(self) -> None:
        assert self._progress is not None and self._task is not None
        self._progress.update(self._task, completed=self.completed, total=self.total, rate=self._rate_text(), detail=self._detail)

    def text(self) -> str:
        count = f"{self.completed:,}" + (f"/{self.total:,}" if self.total is not None else "")
        share = f" ({self.completed / self.total:.0%})" if self.total else ""
        rate = f", {self._rate_text()}" if self.completed else ""
        detail = f" {self._detail}" if self._detail else ""
        return f"{self.label}: {count} {self.unit}{share}{rate}{detail}".replace("  ", " ")

    def _maybe_line(self) -> None:
        now = time.monotonic()
        fraction = self.completed / self.total if self.total else 0.0
        if now - self._last_line_at >= self._every_seconds or fraction - self._last_line_fraction >= self._every_fraction:
            self._line()

    def _line(self, final: bool = False) -> None:
        if self._interactive and not final:
            return
        if final and self._interactive:
            return  # the bar's last state stays on screen
        self.console.print(self.text() + (f" in {time.monotonic() - self._started:.1f}s" if final else ""))
        self._last_line_at = time.monotonic()
        self._last_line_fraction = self.completed / self.total if self.total else 0.0


@contextmanager
def counted(
    label: str,
    total: int | None = None,
    *,
    unit: str = "",
    console: Console | None = None,
    every_seconds: float = 5.0,
    every_fraction: float = 0.1,
) -> Iterator[CountedProgress]:
    """A progress display for the duration of the block (see the module docstring)."""
    bar = CountedProgress(label, total, console or default_console(), unit, every_seconds, every_fraction).start()
    try:
        yield bar
    finally:
        bar.stop()


def step(console: Console | None, index: int, count: int, text: str) -> None:
    """`[index/count] text`: the outline of a command that does several things."""
    (console or default_console()).print(f"[bold][{index}/{count}][/bold] {text}")


def watch(
    process: subprocess.Popen,
    poll: Callable[[], tuple[int, int | None]],
    label: str,
    *,
    unit: str = "",
    console: Console | None = None,
    interval: float = 0.5,
) -> int:
    """Show `poll()` (completed, total) while `process` runs; returns its exit code. A poll that
    fails (the table does not exist yet, say) is shown as no progress, not as an error."""
    with counted(label, unit=unit, console=console) as bar:
        while True:
            code = process.poll()
            try:
                done, total = poll()
                bar.update(completed=done, total=total)
            except Exception:  # noqa: BLE001 - progress is best effort; the process decides success
                pass
            if code is not None:
                return code
            time.sleep(interval)


class ProgressRecords(logging.Handler):
    """Feeds a progress display from log records that carry a `progress` attribute (the
    re-embedding emits them at DEBUG on `dispute_platform.progress`), so a command running Dagster
    in-process can show the progress of the steps it launched."""

    def __init__(self, on_record: Callable[[logging.LogRecord], None]):
        super().__init__(level=logging.DEBUG)
        self._on_record = on_record

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "progress"):
            self._on_record(record)


@contextmanager
def progress_records(
    on_record: Callable[[logging.LogRecord], None], logger_name: str = "dispute_platform.progress"
) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    handler = ProgressRecords(on_record)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
