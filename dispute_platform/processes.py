"""Processes the CLI starts, and how it ends: the same way whether the command finishes, is
interrupted (SIGINT, Ctrl-C) or is told to stop (SIGTERM from systemd or `docker stop`, SIGHUP).

Python's default SIGTERM ends the process on the spot: no `finally`, no `with` exit, no atexit
hook, so the Dagster processes a command started and the embedded PostgreSQL it held stayed up.
`shutdown_on_signals` turns those signals into exceptions that unwind the command, so every
`finally` below it runs; the children (each in its own session, out of reach of the terminal's
Ctrl-C) are then stopped by `stop_all`, and the local services after them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

# Seconds every child gets after SIGTERM before SIGKILL: with the embedded server's own stop,
# a command is down well within 30 s of being told to stop.
STOP_TIMEOUT_SECONDS = 15.0
_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _unwind(signum: int, _frame: FrameType | None) -> None:
    # Once: cleanup must not be cut short by a second Ctrl-C or a repeated SIGTERM.
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@contextmanager
def shutdown_on_signals() -> Iterator[None]:
    """While the block runs, SIGTERM / SIGHUP raise SystemExit and SIGINT KeyboardInterrupt (in
    the main thread only: elsewhere Python allows no handlers). The old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Callable | int | None] = {sig: signal.signal(sig, _unwind) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@dataclass
class Background:
    """A long-lived child (webserver, daemon) and where its output goes."""

    name: str
    process: subprocess.Popen
    log_path: Path


def start_background(program: str, *args: str, log_dir: Path, log_name: str, cwd: Path) -> Background:
    """Start a program of this virtualenv in its own session (a terminal's Ctrl-C reaches only
    the CLI, which then stops it in order), output appended to LOG_DIR/<log_name>.log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{log_name}.log"
    exe = Path(sys.executable).with_name(program)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen([str(exe), *args], cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    return Background(log_name, process, log_path)


def stop_all(children: list[subprocess.Popen], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """Stop every child and all its descendants (code servers, runs) together."""
    from dispute_platform.local import terminate_trees

    terminate_trees([child.pid for child in children], timeout=timeout)
    for child in children:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
