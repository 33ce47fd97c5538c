"""The sentence encoder on ONNX Runtime: the same weights as the sentence-transformers model,
without importing torch.

Importing torch costs ~5 s per process and a MiniLM forward pass through it ~21 ms; ONNX Runtime
and the `tokenizers` package import in ~0.2 s. The graph is exported from the model's own weights
once, at first use, into a cache folder (never downloaded), and checked against the reference
model before it is kept: on probe texts of every length up to the truncation limit, single and
padded batches, each vector must be within cosine `MIN_COSINE` of sentence-transformers' own.

Why the identity (`name@weights`) stays the model's: the graph holds the same float32 weights
and computes the same function (transformer, mean pooling over the attention mask, L2
normalisation); what differs is the order of float operations, the same kind of difference
torch itself shows between a text encoded alone and inside a padded batch (cosine > 0.99999 on
the CFPB narratives). Vectors from either runtime are interchangeable in one collection, so a
runtime switch needs no re-embedding. A quantised graph would be other weights and would need
its own identity; none is used.

Only models shaped like all-MiniLM-L6-v2 are exported (a sentence-transformers folder with a
`tokenizer.json`, a Transformer, mean pooling and normalisation); any other model stays on the
sentence-transformers path.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the exported graph changes: older cached exports are not reused
MIN_COSINE = 0.999
OPSET = 17
_MODULES = [
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
]


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/dispute_platform, else ~/.cache/dispute_platform: one export per machine,
    shared by every platform home, test and benchmark."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dispute_platform"


def exportable(model_dir: Path) -> str | None:
    """None when the folder is a model this module can export; else why not."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError) as exc:
        return f"not a sentence-transformers folder with modules.json and 1_Pooling ({exc})"
    if [m.get("type") for m in modules] != _MODULES:
        return f"modules are {[m.get('type') for m in modules]}, not Transformer + Pooling + Normalize"
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
    if modes != {"pooling_mode_mean_tokens"}:
        return f"pooling is {sorted(modes)}, not mean pooling"
    if not (model_dir / "tokenizer.json").is_file():
        return "no tokenizer.json"
    return None


def max_seq_length(model_dir: Path) -> int:
    try:
        return int(json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError):
        return 256


def export_path(cache_dir: Path, name: str, fingerprint: str) -> Path:
    """Where the export of these weights lives: keyed on the weights' fingerprint, so changed
    weights are exported again instead of serving stale vectors."""
    return cache_dir / "onnx" / f"{name}@{fingerprint}-v{EXPORT_VERSION}" / "model.onnx"


class OnnxSentenceEncoder:
    """Tokenize with the model's own tokenizer.json, run the exported graph, return unit vectors."""

    def __init__(self, onnx_file: Path, model_dir: Path, batch_size: int = 64, threads: int | None = None):
        import numpy as np
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._np = np
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json pads every text to 128 and truncates there; sentence-transformers
        # truncates at max_seq_length and pads a batch to its longest text. Do as it does.
        self.tokenizer.enable_truncation(max_seq_length(model_dir))
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        # Threads that spin between runs steal the CPU from the rest of the process (Chroma,
        # Postgres) and from other runs on a shared machine; a query is one short run.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: Sequence[str]) -> Any:
        """float32 array (len(texts), dim), rows L2-normalised, in the order given."""
        np = self._np
        # Longest first, like sentence-transformers: a batch pads to its longest text only.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = None
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in index])
            width = max(len(e.ids) for e in encodings)
            ids = np.zeros((len(encodings), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, e in enumerate(encodings):
                ids[row, : len(e.ids)] = e.ids
                mask[row, : len(e.ids)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            vectors = self.session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[index] = vectors
        return out if out is not None else np.empty((0, 0), dtype=np.float32)


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """One exporter per machine: two runs starting at once must not both pay for the export."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_export(model_dir: Path, target: Path, reference: Callable[[], Any] | None = None) -> Path:
    """The exported graph at `target`, exporting and verifying it first if it is not there.

    `reference` gives the loaded SentenceTransformer to verify against (called only when an
    export happens; the model is loaded here when None).
    Raises `ExportRejected` when the graph's vectors are not within MIN_COSINE of the reference's."""
    if target.is_file():
        return target
    with _exclusive(target.with_suffix(".lock")):
        if target.is_file():  # another process exported it while we waited
            return target
        partial = target.with_suffix(f".partial-{os.getpid()}")
        try:
            _export(model_dir, partial)
            worst = verify(model_dir, partial, reference() if reference else None)
            (target.parent / "export.json").write_text(
                json.dumps({"source": str(model_dir), "export_version": EXPORT_VERSION, "opset": OPSET, "min_cosine": worst})
            )
            os.replace(partial, target)  # atomic: a reader sees no file or the whole file
        finally:
            partial.unlink(missing_ok=True)
    log.info("exported %s to %s (min cosine to the reference %.7f)", model_dir, target, worst)
    return target


class ExportRejected(RuntimeError):
    pass


def _export(model_dir: Path, onnx_file: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import warnings

    import torch
    from transformers import AutoModel

    class SentenceGraph(torch.nn.Module):
        """Transformer, mean pooling over the mask, L2 normalisation: sentence-transformers'
        three modules for this model shape, in one graph."""

        def __init__(self, transformer: Any) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    # Eager attention traces to plain MatMul/Softmax; the fused kernel's Python-side branches
    # would be frozen into the graph by the tracer.
    transformer = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    # Trace with a padded batch so that the mask's path is what the graph records.
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    dynamic = {n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids")}
    onnx_file.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's advice on control flow: verified below instead
        torch.onnx.export(
            SentenceGraph(transformer),
            (ids, mask, torch.zeros_like(ids)),
            str(onnx_file),
            dynamo=False,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding"],
            dynamic_axes=dynamic | {"sentence_embedding": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
        )


PROBES = [
    "",
    "refund",
    "We were charged twice for the Team plan in March: two charges of $49.00.",
    "The service was down for 26 hours; our team could not work and we expect a credit on the invoice.",
    "I did not authorize this charge. " * 40,  # past the truncation limit
    "Cancelled 12 days after the annual renewal of $1,200.00; requesting a prorated refund. Card ending in 4242.",
    "Überweisung doppelt abgebucht – bitte erstatten. 重复收费 请退款",
]


def verify(model_dir: Path, onnx_file: Path, reference: Any | None = None, texts: Sequence[str] = PROBES) -> float:
    """The smallest cosine between the graph's vectors and the reference model's, over `texts`
    encoded one by one and as one padded batch. Raises ExportRejected below MIN_COSINE."""
    import numpy as np

    if reference is None:
        from sentence_transformers import SentenceTransformer

        reference = SentenceTransformer(str(model_dir), device="cpu")
    expected = reference.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    encoder = OnnxSentenceEncoder(onnx_file, model_dir, threads=1)
    batched = encoder.encode(texts)
    single = np.vstack([encoder.encode([t]) for t in texts])
    worst = float(min((batched * expected).sum(1).min(), (single * expected).sum(1).min()))
    if worst < MIN_COSINE:
        raise ExportRejected(
            f"the ONNX export of {model_dir} gives vectors at cosine {worst:.6f} of the reference model's "
            f"(at least {MIN_COSINE} needed); set EMBEDDING_RUNTIME=torch"
        )
    return worst
