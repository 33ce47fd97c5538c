"""The ONNX Runtime encoder against the reference sentence-transformers model: the same vectors
(cosine >= 0.999) on the CFPB texts, exported once and reused, no torch in a process that only
encodes, and the same model identity on both runtimes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dispute_platform.datasets.cfpb import CfpbComplaint, read_complaints, to_historical
from dispute_platform.resources import onnx_encoder as ox
from dispute_platform.resources.vectors import Embedder, packaged_model_path

CFPB_CSV = Path(__file__).resolve().parent.parent / "data" / "cfpb_credit_card_dev.csv"
REPO = Path(__file__).resolve().parents[2]


def cfpb_texts() -> list[str]:
    """What the platform embeds for each complaint: its query-shaped text, the narrative
    included (long ones reach the 256-token truncation)."""
    with CFPB_CSV.open(encoding="utf-8-sig", newline="") as fh:
        return [to_historical(c).embedding_text() for c in read_complaints(fh) if isinstance(c, CfpbComplaint)]


@pytest.fixture(scope="module")
def onnx_embedder() -> Embedder:
    embedder = Embedder(runtime="onnx")  # the default cache: exported once per machine
    assert embedder.runtime_in_use == "onnxruntime"
    return embedder


@pytest.fixture(scope="module")
def reference() -> Embedder:
    return Embedder(runtime="torch")


def test_onnx_vectors_match_the_reference_model_on_the_cfpb_texts(onnx_embedder, reference):
    texts = cfpb_texts()
    assert len(texts) > 400
    expected = np.asarray(reference.encode(texts))
    batched = np.asarray(onnx_embedder.encode(texts))
    assert batched.shape == expected.shape == (len(texts), 384)
    cosines = (batched * expected).sum(axis=1)
    assert cosines.min() >= 0.999, f"worst text: {texts[int(cosines.argmin())][:200]!r} at {cosines.min():.6f}"
    # A query is encoded alone (no padding): the same vectors again.
    alone = np.asarray([onnx_embedder.encode([t])[0] for t in texts[::10]])
    assert (alone * expected[::10]).sum(axis=1).min() >= 0.999
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_both_runtimes_carry_the_same_identity(onnx_embedder, reference):
    # Same weights, same function: stored vectors need no re-embedding when the runtime changes.
    assert onnx_embedder.identity == reference.identity
    assert onnx_embedder.identity.startswith("all-MiniLM-L6-v2@")


def test_the_export_happens_once_and_a_damaged_export_is_replaced(tmp_path, reference):
    embedder = Embedder(runtime="onnx", cache_dir=str(tmp_path))
    vector = embedder.encode(["We were charged twice for the Team plan."])[0]
    target = ox.export_path(tmp_path, embedder.name, embedder.fingerprint)
    assert target.is_file()
    record = json.loads((target.parent / "export.json").read_text())
    assert record["min_cosine"] >= ox.MIN_COSINE and record["export_version"] == ox.EXPORT_VERSION
    assert not list(target.parent.glob("*.partial-*"))

    mtime = target.stat().st_mtime_ns
    again = Embedder(runtime="onnx", cache_dir=str(tmp_path))
    assert again.encode(["We were charged twice for the Team plan."])[0] == pytest.approx(vector, abs=1e-6)
    assert target.stat().st_mtime_ns == mtime  # reused, not exported again

    target.write_bytes(b"not an onnx graph")
    repaired = Embedder(runtime="onnx", cache_dir=str(tmp_path))
    assert repaired.runtime_in_use == "onnxruntime"
    assert repaired.encode(["We were charged twice for the Team plan."])[0] == pytest.approx(vector, abs=1e-6)


def test_a_process_that_only_encodes_never_imports_torch(onnx_embedder):
    code = textwrap.dedent(
        """
        import sys
        from dispute_platform.resources.vectors import Embedder
        embedder = Embedder(runtime="onnx")
        assert len(embedder.encode(["late fee of $35"])[0]) == 384
        assert embedder.runtime_in_use == "onnxruntime"
        heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
        print(",".join(heavy))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == ""


def test_an_export_below_the_cosine_floor_is_refused(onnx_embedder, reference, monkeypatch):
    target = ox.export_path(ox.default_cache_dir(), onnx_embedder.name, onnx_embedder.fingerprint)
    monkeypatch.setattr(ox, "MIN_COSINE", 1.0001)  # unreachable: every export is refused
    with pytest.raises(ox.ExportRejected, match="EMBEDDING_RUNTIME=torch"):
        ox.verify(Path(packaged_model_path()), target, reference.model)


def test_a_refused_export_leaves_the_model_on_sentence_transformers(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise ox.ExportRejected("vectors differ")

    monkeypatch.setattr(ox, "ensure_export", refuse)
    embedder = Embedder(runtime="onnx", cache_dir=str(tmp_path))
    assert embedder.runtime_in_use == "sentence-transformers"
    assert len(embedder.encode(["duplicate charge"])[0]) == 384


def test_only_mean_pooled_normalised_models_are_exported(tmp_path):
    model = Path(packaged_model_path())
    assert ox.exportable(model) is None
    copy = tmp_path / "cls-model"
    (copy / "1_Pooling").mkdir(parents=True)
    (copy / "modules.json").write_text((model / "modules.json").read_text())
    (copy / "tokenizer.json").write_text("{}")
    pooling = json.loads((model / "1_Pooling" / "config.json").read_text())
    (copy / "1_Pooling" / "config.json").write_text(
        json.dumps(pooling | {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True})
    )
    assert "not mean pooling" in (ox.exportable(copy) or "")
    (copy / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    modules = json.loads((model / "modules.json").read_text())[:2]  # no Normalize
    (copy / "modules.json").write_text(json.dumps(modules))
    assert "not Transformer + Pooling + Normalize" in (ox.exportable(copy) or "")
    assert "not a sentence-transformers folder" in (ox.exportable(tmp_path) or "")
