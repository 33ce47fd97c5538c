"""`dispute-platform serve`: the whole local service as one process tree. The review desk and the
decision endpoint (uvicorn, in this process), the Dagster UI (dagster-webserver) and the daemon
that runs the sensors and the run queue (dagster-daemon): a decision taken in the desk is
executed without anything else running. Ctrl-C, SIGTERM or SIGHUP stop all of it, then the
local services (the embedded PostgreSQL last, when no other command still uses it)."""

from __future__ import annotations

import threading

import click


def _watch(children, console, stopping: threading.Event) -> None:
    """Say so when a child ends on its own (the desk then also says no daemon is running)."""
    reported: set[str] = set()
    while not stopping.wait(2.0):
        for child in children:
            code = child.process.poll()
            if code is not None and child.name not in reported:
                reported.add(child.name)
                console.print(f"[red]{child.name} exited with code {code}[/red]; see {child.log_path}")


@click.command("serve")
@click.option("--host", default=None, help="Desk and endpoint bind address (default API_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Desk and endpoint port (default API_PORT, 8003).")
@click.option("--ui-host", default="127.0.0.1", show_default=True, help="Dagster UI bind address.")
@click.option("--ui-port", default=3000, show_default=True, help="Dagster UI port.")
def serve_command(host: str | None, port: int | None, ui_host: str, ui_port: int) -> None:
    """Run the review desk, the decision endpoint, the Dagster UI and the daemon together."""
    import uvicorn

    from dispute_platform.commands.shell import background, console, local_services, migrate, set_pool_limits, stop
    from dispute_platform.settings import get_settings

    with local_services() as services:
        migrate(verbose=False)
        set_pool_limits()
        settings = get_settings()
        workspace = str(services.workspace)
        webserver = background("dagster-webserver", "-w", workspace, "-h", ui_host, "-p", str(ui_port), log_name="webserver")
        daemon = background("dagster-daemon", "run", "-w", workspace, log_name="daemon")
        stopping = threading.Event()
        threading.Thread(target=_watch, args=([webserver, daemon], console, stopping), daemon=True).start()
        bind_host, bind_port = host or settings.api_host, port or settings.api_port
        try:
            console.print(f"review desk      http://{bind_host}:{bind_port}/desk/  (sign in with a reviewer token)")
            console.print(f"decision API     http://{bind_host}:{bind_port}/docs   health: /health")
            console.print(f"Dagster UI       http://{ui_host}:{ui_port}            logs: {webserver.log_path}")
            console.print(f"Dagster daemon   sensors and run queue             logs: {daemon.log_path}")
            console.print("Ctrl-C (or SIGTERM) stops everything.")
            uvicorn.run(
                "dispute_platform.api.app:app_from_environment", factory=True, host=bind_host, port=bind_port, log_level="info"
            )
        finally:
            stopping.set()
            console.print("stopping the Dagster UI and daemon ...")
            stop(webserver.process, daemon.process)
