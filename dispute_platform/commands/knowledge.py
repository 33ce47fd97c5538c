"""The knowledge steps of `setup` and `run`, with counted progress: clear the Chroma collections
(on `setup --reset`), and materialise `company_policies` + `historical_resolutions` (then
`proposal_calibration`, fitted on them, so the first proposals are already calibrated) in a
Dagster run while a bar counts the past cases embedded by the current model (a SQL count)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from dispute_platform.commands.progress import watch
from dispute_platform.settings import REPO_ROOT, get_settings
from dispute_platform.store.history import embedding_progress

KNOWLEDGE_SELECTION = "company_policies,historical_resolutions,proposal_calibration"


def clear_chroma(console: Console) -> list[str]:
    """Drop both collections (policies and past cases); they are rebuilt from policies/ and
    Postgres. Returns the collections dropped."""
    from dispute_platform.resources.vectors import VectorStoreResource

    settings = get_settings()
    vectors = VectorStoreResource.from_settings(settings)
    names = [vectors.policies_collection, vectors.resolutions_collection]
    for name in names:
        vectors.reset_collection(name)
    console.print(f"[yellow]cleared Chroma collections {', '.join(names)}[/yellow]")
    return names


def _expected_history() -> int:
    from dispute_platform.workflow.knowledge import SEED_HISTORY

    with SEED_HISTORY.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def materialize_knowledge(console: Console) -> tuple[int, str]:
    """Run the knowledge assets in a Dagster run (a child process, recorded in the instance) and
    count the past cases embedded while it runs. Returns the exit code and the run's output."""
    from dispute_platform.local import database
    from dispute_platform.workflow.reembed import current_model_identity

    identity = current_model_identity(get_settings().embedding_model)
    expected = _expected_history()
    db = database(get_settings(), maxconn=1)
    exe = Path(sys.executable).with_name("dagster")
    command = [str(exe), "asset", "materialize", "-m", "dispute_platform.definitions", "--select", KNOWLEDGE_SELECTION]

    def poll() -> tuple[int, int]:
        done, total = embedding_progress(db, identity)
        return done, max(total, expected)

    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT, text=True)
        try:
            code = watch(process, poll, "past cases embedded", unit="cases", console=console)
        finally:
            if process.poll() is None:  # interrupted: the run goes down (and is waited for) before the services
                from dispute_platform.local import terminate_tree

                terminate_tree(process.pid, timeout=10)
            db.close()
        output.seek(0)
        return code, output.read()
