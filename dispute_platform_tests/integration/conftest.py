"""Integration fixtures: a Chroma folder seeded once per session (policies and the seed history,
embedded by the real model) and copied for each test, so every test gets its own real Chroma."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.settings import REPO_ROOT
from dispute_platform.workflow.knowledge import load_policies, read_seed_history


@pytest.fixture(scope="session")
def seeded_chroma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seeded") / "chroma"
    vectors = VectorStoreResource(chroma_path=str(folder))
    load_policies(vectors, REPO_ROOT / "policies")
    vectors.upsert_resolutions(read_seed_history())
    del vectors  # release the folder before it is copied
    return folder


@pytest.fixture
def chroma_dir(seeded_chroma: Path, tmp_path: Path) -> Path:
    target = tmp_path / "chroma"
    shutil.copytree(seeded_chroma, target)
    return target
