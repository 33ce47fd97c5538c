"""The `dispute-platform` command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dispute_platform import __version__
from dispute_platform.commands.shell import background as _background
from dispute_platform.commands.shell import console, local_services
from dispute_platform.commands.shell import fail as _fail
from dispute_platform.commands.shell import migrate as _migrate
from dispute_platform.commands.shell import set_pool_limits as _set_pool_limits
from dispute_platform.commands.shell import stop as _stop
from dispute_platform.settings import get_settings


@click.group()
@click.version_option(__version__, prog_name="dispute-platform")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Billing disputes in, reviewed and executed resolutions out (a Dagster code location)."""
    from dispute_platform.processes import shutdown_on_signals

    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    # SIGTERM / SIGINT / SIGHUP unwind the command, so what it started is stopped on the way out.
    ctx.with_resource(shutdown_on_signals())


def _materialize_knowledge() -> None:
    from dispute_platform.commands.knowledge import materialize_knowledge

    console.print("knowledge: embedding policies and past resolutions (Dagster run)...")
    code, output = materialize_knowledge(console)  # counts the past cases embedded as it goes
    if code != 0:
        _fail("knowledge assets failed to materialise:\n" + output[-3000:])


# --- setup -------------------------------------------------------------------------------------


@main.command()
@click.option("--check", is_flag=True, help="Report applied migrations; exit 1 when behind.")
@click.option("--reset", is_flag=True, help="Drop the platform's tables (and sandbox state), then recreate.")
@click.option("--yes", is_flag=True, help="Confirm --reset.")
@click.option("--skip-db", is_flag=True, help="Do not touch the database schema.")
@click.option("--skip-vector", is_flag=True, help="Do not (re)build the Chroma collections.")
def setup(check: bool, reset: bool, yes: bool, skip_db: bool, skip_vector: bool) -> None:
    """Apply the SQL migrations idempotently and seed the knowledge base."""
    from dispute_platform.local import database
    from dispute_platform.store import migrations

    with local_services():
        db = database(get_settings())
        if check:
            behind = 0
            table = Table("version", "name", "applied at", "checksum")
            for st in migrations.status(db):
                behind += st.applied_at is None or not st.checksum_matches
                table.add_row(
                    st.migration.version,
                    st.migration.name,
                    str(st.applied_at or "[yellow]pending[/yellow]"),
                    "ok" if st.checksum_matches else "[red]edited after apply[/red]",
                )
            console.print(table)
            if behind:
                _fail(f"{behind} migration(s) pending or edited; run `dispute-platform setup`")
            console.print("database is up to date")
            return
        from dispute_platform.commands.knowledge import clear_chroma
        from dispute_platform.commands.progress import step

        planned = [
            name for name, wanted in (("reset", reset), ("database", not skip_db), ("knowledge", not skip_vector)) if wanted
        ]
        if reset:
            if not yes:
                _fail("--reset drops every platform table and the sandbox's refunds and credits; add --yes to confirm")
            step(console, planned.index("reset") + 1, len(planned), "reset: platform schema and Chroma collections")
            migrations.reset(db)
            console.print("[yellow]dropped schema dispute_platform[/yellow]")
            clear_chroma(console)  # Chroma indexes what Postgres held: both go together
        if not skip_db:
            step(console, planned.index("database") + 1, len(planned), "database: migrations and pool limits")
            _migrate()
            _set_pool_limits()
        if not skip_vector:
            step(console, planned.index("knowledge") + 1, len(planned), "knowledge: policies and past cases into Chroma")
            _materialize_knowledge()
            console.print("knowledge base ready")


# --- publish -----------------------------------------------------------------------------------


def _sample_events() -> list[dict]:
    from dispute_platform.domain.world import SandboxWorld

    return SandboxWorld.load(get_settings().sandbox_data).sample_events


@main.command()
@click.option("--case-id", help="Publish the sample event of this case (or a bare event naming it).")
@click.option("--count", type=int, help="Publish the first N sample events.")
@click.option("--queue-url", help="Queue to publish to (default: DISPUTE_EVENTS_QUEUE_URL or the local queue).")
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON lines file: one event body per line, sent as is.",
)
def publish(case_id: str | None, count: int | None, queue_url: str | None, file_: Path | None) -> None:
    """Send dispute events to SQS."""
    with local_services(verbose=False) as services:
        if queue_url is None and getattr(services, "_moto", None) is not None:
            _fail(
                "no SQS queue is configured and no local endpoint is running: start `dispute-platform dev` "
                "(or `run`) in another terminal first, or set DISPUTE_EVENTS_QUEUE_URL"
            )
        from dispute_platform.definitions import build_resources

        sqs = build_resources(get_settings())["sqs"]
        if file_ is not None:
            bodies: list[str | dict] = [
                line.rstrip("\n") for line in file_.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
        else:
            samples = _sample_events()
            if case_id:
                bodies = [e for e in samples if e["case_id"] == case_id] or [
                    {"case_id": case_id, "event_id": f"evt-{case_id}-manual"}
                ]
            else:
                n = len(samples) if count is None else count
                if n > len(samples):
                    _fail(f"only {len(samples)} sample events exist; use --file for more")
                bodies = samples[:n]
        sent = sqs.send_many(bodies, queue_url)
        console.print(f"published {sent} event(s) to {queue_url or sqs.dispute_events_queue_url}")


# --- run ---------------------------------------------------------------------------------------


def _active_runs() -> int:
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    with DagsterInstance.get() as instance:
        return instance.get_runs_count(
            RunsFilter(
                statuses=[
                    DagsterRunStatus.QUEUED,
                    DagsterRunStatus.NOT_STARTED,
                    DagsterRunStatus.STARTING,
                    DagsterRunStatus.STARTED,
                ]
            )
        )


def _wait_until_settled(db, settled: set[str], queued, timeout: float, label: str, on_tick=None) -> dict[str, int]:
    """Poll until the queue is empty (`queued()` is 0), every dispute is in `settled` and no run
    is left, with a bar. `on_tick` runs at every poll (the demo reviewer decides there)."""
    from dispute_platform.store import repo

    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(label, total=None)
        while True:
            if on_tick is not None:
                on_tick()
            counts = db.transact(repo.status_counts)
            waiting = queued()
            total = sum(counts.values())
            done = sum(n for s, n in counts.items() if s in settled)
            bar.update(task, total=max(total + waiting, 1), completed=done)
            active = _active_runs()
            if waiting == 0 and done == total and active == 0:
                # Settled and quiet for a few seconds: no run is about to be requested.
                if quiet_since is not None and time.monotonic() - quiet_since > 3:
                    return counts
                quiet_since = quiet_since or time.monotonic()
            else:
                quiet_since = None
            if time.monotonic() > deadline:
                _fail(
                    f"timed out after {timeout:.0f}s with statuses {counts}, {waiting} queued message(s) and "
                    f"{active} active run(s); see {get_settings().home / 'logs'}"
                )
            time.sleep(1.0)


def _summary_table(db, title: str) -> Table:
    from dispute_platform.commands.summary import summary_table

    return summary_table(db, title)


@main.command()
@click.option("--auto-approve", is_flag=True, help="A demo reviewer approves every proposal through the decision endpoint.")
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait for the disputes to settle.")
@click.option("--no-samples", is_flag=True, help="Do not publish the sample events, even on an empty queue.")
def run(auto_approve: bool, timeout: float, no_samples: bool) -> None:
    """The main job: events in, proposals out (and, with --auto-approve, executed resolutions)."""
    from dispute_platform.domain.states import INTAKE_SETTLED
    from dispute_platform.local import database

    os.environ.setdefault("SQS_SENSOR_INTERVAL_SECONDS", "2")
    os.environ.setdefault("REVIEW_SENSOR_INTERVAL_SECONDS", "2")
    with local_services() as services:
        _migrate()
        _set_pool_limits()
        _materialize_knowledge()
        from dispute_platform.definitions import build_resources

        settings = get_settings()
        sqs = build_resources(settings)["sqs"]
        db = database(settings)
        if not no_samples and sqs.approximate_depth() == 0:
            sent = sqs.send_many(_sample_events())
            console.print(f"published {sent} sample events to {sqs.dispute_events_queue_url}")
        started = datetime.now(UTC)
        daemon = _background("dagster-daemon", "run", "-w", str(services.workspace), log_name="daemon")
        try:
            console.print(f"dagster-daemon started (sensors, run queue); logs in {daemon.log_path}")
            queued = sqs.approximate_depth
            _wait_until_settled(db, {s.value for s in INTAKE_SETTLED}, queued, timeout, "disputes to proposal")
            if auto_approve:
                with _demo_reviewer(db, settings) as approve_pending:
                    _wait_until_settled(db, DEMO_SETTLED, queued, timeout, "decisions executed", on_tick=approve_pending)
        finally:
            _stop(daemon.process)
        console.print(_summary_table(db, "Disputes"))
        _report_failed_runs(started, daemon.log_path)
        if not auto_approve:
            console.print(
                "Proposals wait for a reviewer: `dispute-platform reviewer add NAME` prints a token; "
                "`dispute-platform serve` runs the review desk (http://127.0.0.1:8003/desk/), the decision endpoint, "
                "the Dagster UI and the daemon that executes decisions. `run --auto-approve` lets a demo reviewer decide."
            )


def _report_failed_runs(since: datetime, log_path: Path) -> None:
    from dispute_platform.commands.summary import failed_runs_since

    failed = failed_runs_since(since)
    if not failed:
        return
    console.print(f"[yellow]{len(failed)} Dagster run(s) failed while this command ran[/yellow] (RUN_FAILURE; the disputes "
                  "above say which were stopped and why):")  # fmt: skip
    for run_id, step, why in failed:
        console.print(f"  {run_id} ({step}): {why}", soft_wrap=True)
    console.print(f"  details: the run's page in the Dagster UI (`dispute-platform serve`), or {log_path}")


# Where a dispute rests once the demo reviewer has done what it may: escalations stay with people.
DEMO_SETTLED = {
    "invalid", "blocked", "proposal_failed", "completed", "execution_failed", "rejected",
    "pending_review", "model_failed", "review_escalated", "awaiting_second_review",
}  # fmt: skip


@contextmanager
def _demo_reviewer(db, settings) -> Iterator[object]:
    """Serve the decision endpoint on a free port and approve, through it, every proposal that
    has an action to approve. Escalations are left for a person, as the policies demand."""
    import secrets
    import socket
    import threading

    import httpx
    import uvicorn

    from dispute_platform.api.app import create_app
    from dispute_platform.resources.limits import Limits
    from dispute_platform.store.reviewers import add_reviewer, revoke_reviewer

    token = secrets.token_urlsafe(24)
    name = f"demo-reviewer-{secrets.token_hex(3)}"
    db.transact(lambda cur: add_reviewer(cur, name, token, "demo@brightwave.example"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(db, limits=Limits.from_settings(settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    console.print(f"demo reviewer {name} deciding through http://127.0.0.1:{port}/human-review/decision")

    def approve_pending() -> None:
        for item in client.get("/human-review/pending").raise_for_status().json()["pending"]:
            if item["action"] == "escalate" or item["status"] != "pending_review":
                continue
            answer = client.post(
                "/human-review/decision",
                json={"case_id": item["case_id"], "proposal_version": item["version"], "decision": "approved",
                      "comments": "approved by the demo reviewer (run --auto-approve)"},
            )  # fmt: skip
            if answer.status_code not in (200, 409):
                console.print(f"[yellow]{item['case_id']}: {answer.status_code} {answer.text}[/yellow]")

    try:
        yield approve_pending
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=10)
        db.transact(lambda cur: revoke_reviewer(cur, name))  # its token was in this process only


# --- dev ---------------------------------------------------------------------------------------


@main.command()
@click.option("--port", default=3000, show_default=True, help="Dagster UI port.")
@click.option("--host", default="127.0.0.1", show_default=True)
def dev(port: int, host: str) -> None:
    """Open the Dagster UI (webserver + daemon) on the platform's storage."""
    with local_services() as services:
        _migrate()
        _set_pool_limits()
        exe = Path(sys.executable).with_name("dagster")
        console.print(f"Dagster UI on http://{host}:{port} (Ctrl-C stops it and the local services)")
        process = subprocess.Popen([str(exe), "dev", "-w", str(services.workspace), "-p", str(port), "-h", host])
        try:
            process.wait()
        finally:
            _stop(process)  # `dagster dev`, its webserver, daemon, code servers and runs


# --- api and reviewers -----------------------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Bind address (default API_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default API_PORT, 8003).")
def api(host: str | None, port: int | None) -> None:
    """Serve the decision endpoint (OpenAPI schema at /docs and /openapi.json)."""
    import uvicorn

    with local_services():
        _migrate(verbose=False)
        settings = get_settings()
        uvicorn.run(
            "dispute_platform.api.app:app_from_environment",
            factory=True,
            host=host or settings.api_host,
            port=port or settings.api_port,
            log_level="info",
        )


@main.group()
def reviewer() -> None:
    """Manage reviewer identities (bearer tokens, stored hashed)."""


@reviewer.command("add")
@click.argument("name")
@click.option("--email", help="The reviewer's e-mail address.")
def reviewer_add(name: str, email: str | None) -> None:
    """Create a reviewer and print its token (shown once). Names are unique whatever their case."""
    import secrets

    import psycopg2

    from dispute_platform.domain.review import check_reviewer_name
    from dispute_platform.local import database
    from dispute_platform.store.reviewers import add_reviewer

    try:
        name = check_reviewer_name(name)
    except ValueError as exc:
        _fail(str(exc))
    with local_services(verbose=False):
        _migrate(verbose=False)
        token = secrets.token_urlsafe(32)
        try:
            database(get_settings()).transact(lambda cur: add_reviewer(cur, name, token, email))
        except psycopg2.errors.UniqueViolation:
            _fail(f"a reviewer named {name!r} already exists (names are unique whatever their case)")
        console.print(f"reviewer {name} created. Token (shown once, keep it secret):\n{token}")


def _change_reviewer(name: str, change, done: str) -> None:
    """Apply `change(cur)` to the reviewer called `name` (any case); say `done`, or fail if none."""
    from dispute_platform.local import database

    with local_services(verbose=False):
        _migrate(verbose=False)
        if not database(get_settings()).transact(change):
            _fail(f"no reviewer named {name!r}")
        console.print(done)


@reviewer.command("revoke")
@click.argument("name")
def reviewer_revoke(name: str) -> None:
    """Disable a reviewer at once: their token and unused decision tickets stop working."""
    from dispute_platform.store.reviewers import revoke_reviewer

    _change_reviewer(name, lambda cur: revoke_reviewer(cur, name),
                     f"reviewer {name} revoked: their token and unused tickets no longer work")  # fmt: skip


@reviewer.command("rotate")
@click.argument("name")
def reviewer_rotate(name: str) -> None:
    """Give a reviewer a new token (printed once); the old one and their unused tickets stop at once."""
    import secrets

    from dispute_platform.store.reviewers import rotate_token

    token = secrets.token_urlsafe(32)
    _change_reviewer(name, lambda cur: rotate_token(cur, name, token),
                     f"reviewer {name}: new token (shown once, keep it secret):\n{token}")  # fmt: skip


@reviewer.command("list")
def reviewer_list() -> None:
    """Every reviewer record, with whether it is active and how many decisions it made."""
    from dispute_platform.local import database
    from dispute_platform.store.reviewers import list_reviewers

    with local_services(verbose=False):
        _migrate(verbose=False)
        rows = database(get_settings()).transact(list_reviewers)
        table = Table("name", "kind", "e-mail", "created", "state", "decisions")
        for row in rows:
            state = f"revoked {row['disabled_at']:%Y-%m-%d %H:%M}" if row["disabled_at"] else "active"
            table.add_row(
                row["name"], row["kind"], row["email"] or "-", f"{row['created_at']:%Y-%m-%d}", state, str(row["decisions"])
            )
        console.print(table)


# --- status ------------------------------------------------------------------------------------


@main.command()
def status() -> None:
    """Print every dispute with its status, proposal and execution."""
    from dispute_platform.local import database

    with local_services(verbose=False):
        console.print(_summary_table(database(get_settings()), "Disputes"))


# --- commands whose bodies live in dispute_platform/commands/ ------------------------------------
from dispute_platform.commands.archive import archive_command  # noqa: E402
from dispute_platform.commands.cfpb import import_cfpb_command  # noqa: E402
from dispute_platform.commands.costs import costs_command  # noqa: E402
from dispute_platform.commands.doctor import doctor_command  # noqa: E402
from dispute_platform.commands.evaluate import evaluate_command  # noqa: E402
from dispute_platform.commands.reembed import reembed_command  # noqa: E402
from dispute_platform.commands.serve import serve_command  # noqa: E402

for _command in (
    archive_command,
    import_cfpb_command,
    evaluate_command,
    doctor_command,
    costs_command,
    reembed_command,
    serve_command,
):
    main.add_command(_command)


if __name__ == "__main__":
    main()
