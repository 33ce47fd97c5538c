"""What every CLI command shares: the console, failing with a message, the local services, the
schema, Dagster's pools and processes. Commands import it; it imports no command (no cycle back
to cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

from dispute_platform.local import LocalServices, database
from dispute_platform.settings import get_settings, use_settings

# Wide enough for the summary table when the output is a file or a CI log.
console = Console(width=None if sys.stdout.isatty() else 160)


def fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}")
    sys.exit(code)


@contextmanager
def local_services(verbose: bool = True) -> Iterator[LocalServices]:
    """The command's services: what is not configured is started, and for the command's duration
    its settings (`services.settings`) are this process's settings and its environment is this
    process's environment. The environment is for Dagster, which reads DAGSTER_HOME and the
    resources' secrets from it in this process, and for every child process; the platform's own
    code takes `services.settings`. Both are put back on the way out."""
    with LocalServices() as services:
        if verbose:
            for item in services.started:
                console.print(f"[dim]started {item}[/dim]")
        before = {name: os.environ.get(name) for name in services.environment}
        os.environ.update(services.environment)
        use_settings(services.settings)
        try:
            yield services
        finally:
            use_settings(None)
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def migrate(verbose: bool = True) -> None:
    from dispute_platform.store import migrations

    db = database(get_settings())
    applied = migrations.apply(db)
    if verbose:
        console.print(
            f"database: {len(applied)} migration(s) applied"
            + (f" ({', '.join(m.version for m in applied)})" if applied else ", up to date")
        )
    db.close()


def set_pool_limits() -> None:
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        # Chroma's persistent folder takes one writer at a time; model calls are capped too.
        instance.event_log_storage.set_concurrency_slots("chroma_writer", 1)
        instance.event_log_storage.set_concurrency_slots("llm", 4)


def background(program: str, *args: str, log_name: str):
    """Start a long-lived Dagster process (its own session, output to DISPUTE_PLATFORM_HOME/logs)."""
    from dispute_platform.processes import start_background
    from dispute_platform.settings import REPO_ROOT

    return start_background(program, *args, log_dir=get_settings().home / "logs", log_name=log_name, cwd=REPO_ROOT)


def stop(*processes: subprocess.Popen) -> None:
    from dispute_platform.processes import stop_all

    stop_all(list(processes))
