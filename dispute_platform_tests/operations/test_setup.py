"""Issue 5: `setup --reset` clears the Chroma collections along with the platform schema."""

from __future__ import annotations

import io

from rich.console import Console

from dispute_platform.commands.knowledge import clear_chroma
from dispute_platform.resources.vectors import POLICIES, RESOLUTIONS, VectorStoreResource
from dispute_platform.settings import get_settings


def test_reset_clears_both_collections(tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMA_DB_PATH", str(tmp_path / "chroma"))
    monkeypatch.delenv("CHROMA_HOST", raising=False)
    get_settings.cache_clear()
    try:
        vectors = VectorStoreResource(chroma_path=str(tmp_path / "chroma"))
        for name in (POLICIES, RESOLUTIONS):
            vectors.collection(name).upsert(ids=["x"], documents=["x"], embeddings=[[0.5] * 384], metadatas=[{"model": "m"}])
        out = io.StringIO()
        assert clear_chroma(Console(file=out, width=120)) == [POLICIES, RESOLUTIONS]
        names = {c.name for c in VectorStoreResource(chroma_path=str(tmp_path / "chroma")).client.list_collections()}
        assert not names & {POLICIES, RESOLUTIONS}
        assert "cleared Chroma collections" in out.getvalue()
    finally:
        get_settings.cache_clear()
