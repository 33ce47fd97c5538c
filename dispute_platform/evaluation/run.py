"""Replay CFPB complaints through the proposal stage and score the proposals against what the
companies really did. The imperative shell of the evaluation: it reads files, fills a throw-away
Chroma folder and calls the provider; the mapping (`replay`), the scoring (`metrics`) and the
report (`report`) are pure.

Nothing live is touched: no queue, no Postgres (the proposal cache is bypassed, so a cached reply
can neither hide a provider's behaviour nor be left behind), no money; the knowledge lives in
collections `eval_policies` / `eval_resolutions` of a temporary Chroma folder, deleted at the end.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispute_platform.datasets.cfpb import (
    REQUIRED_FOR_OUTCOME,
    CfpbComplaint,
    RowProblem,
    UnusableComplaint,
    in_history_split,
    outcome_label,
    outcome_problem,
    read_complaints,
    to_historical,
)
from dispute_platform.domain.costs import price_for
from dispute_platform.domain.knowledge import HistoricalResolution
from dispute_platform.domain.models import EnrichedContext, ResolutionProposal
from dispute_platform.domain.precedent_vote import MONEY_BACK, PrecedentSettings, tally
from dispute_platform.evaluation import metrics
from dispute_platform.evaluation.costing import cached_tokens_in_sequence, prompt_tokens, would_be_cost
from dispute_platform.evaluation.replay import complaint_context, dispute_amount
from dispute_platform.evaluation.results import DisputeResult, Problem

EVAL_POLICIES = "eval_policies"
EVAL_RESOLUTIONS = "eval_resolutions"
REFERENCE_MODEL = "gpt-4o-mini"
EMBED_BATCH = 256
KNN_SENSITIVITY_KS = (5, 10)  # the kNN baseline is also reported at these k, beside the engine's own


class EvaluationError(Exception):
    """Unusable input or options (the message says what to do); never raised for a bad row."""


@dataclass
class EvaluationOptions:
    complaints: Path
    out_dir: Path
    history: Path | None = None
    split: float | None = None
    provider: str = "precedent"
    limit: int | None = None
    billing_only: bool = False
    policies_dir: Path | None = None


@dataclass
class EvaluationRun:
    report: dict[str, Any]
    results: list[DisputeResult]
    problems: list[Problem]
    files: dict[str, Path] = field(default_factory=dict)


Progress = Callable[[str], None]


# --- reading ----------------------------------------------------------------------------------


def read_file(path: Path, stage: str, limit: int | None = None) -> tuple[list[CfpbComplaint], list[Problem], int]:
    """Complaints of a CFPB-format file, the problems of its bad rows, and the rows read.
    Undecodable bytes become U+FFFD (reported by nothing else: the text is kept)."""
    from dispute_platform.datasets.cfpb import CfpbFormatError

    complaints: list[CfpbComplaint] = []
    problems: list[Problem] = []
    rows = 0
    try:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
            for item in read_complaints(fh, required=REQUIRED_FOR_OUTCOME, limit=limit):
                rows += 1
                if isinstance(item, RowProblem):
                    problems.append(
                        Problem(stage=stage, row=item.row, line=item.line, complaint_id=item.complaint_id, reason=item.reason)
                    )
                else:
                    complaints.append(item)
    except CfpbFormatError as exc:
        raise EvaluationError(f"{path}: {exc}") from None
    except OSError as exc:
        raise EvaluationError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    return complaints, problems, rows


def split_complaints(complaints: Sequence[CfpbComplaint], fraction: float) -> tuple[list[CfpbComplaint], list[CfpbComplaint]]:
    """(history, to evaluate): a deterministic split by complaint id (`in_history_split`)."""
    history = [c for c in complaints if in_history_split(c.complaint_id, fraction)]
    rest = [c for c in complaints if not in_history_split(c.complaint_id, fraction)]
    return history, rest


def history_records(
    complaints: Sequence[CfpbComplaint], stage: str = "history"
) -> tuple[list[HistoricalResolution], list[Problem]]:
    """Past cases from complaints, one per case id (a later row replaces an earlier one)."""
    records: dict[str, HistoricalResolution] = {}
    problems: list[Problem] = []
    for complaint in complaints:
        try:
            record = to_historical(complaint)
        except (UnusableComplaint, ValueError) as exc:
            problems.append(
                Problem(stage=stage, row=complaint.row, line=complaint.line, complaint_id=complaint.complaint_id, reason=str(exc))
            )
            continue
        records[record.case_id] = record
    return list(records.values()), problems


# --- the proposal stage ------------------------------------------------------------------------


class _Uncached:
    """A provider with the proposal cache switched off (see the module docstring)."""

    cacheable = False

    def __init__(self, inner: Any):
        self.inner = inner
        self.name = inner.name
        self.model = getattr(inner, "model", inner.name)

    def propose(self, *args: Any, **kwargs: Any) -> ResolutionProposal:
        return self.inner.propose(*args, **kwargs)


def make_provider(name: str) -> Any:
    from dispute_platform.resources.llm import OpenAIProposer, PrecedentProposer
    from dispute_platform.settings import get_settings

    if name == "precedent":
        return _Uncached(PrecedentProposer())
    if name == "openai":
        settings = get_settings()
        key = os.environ.get("OPENAI_API_KEY") or (settings.openai_api_key.get_secret_value() if settings.openai_api_key else "")
        if not key:
            raise EvaluationError("--provider openai needs OPENAI_API_KEY in the environment (the precedent provider needs none)")
        return _Uncached(OpenAIProposer.from_settings(settings, key))
    raise EvaluationError(f"unknown provider {name!r}: choose precedent or openai")


def proposal_limits() -> Any:
    """The same caps and budgets the platform runs with (its settings)."""
    from dispute_platform.resources.limits import Limits
    from dispute_platform.settings import get_settings

    return Limits.from_settings(get_settings()).proposal_limits()


@contextmanager
def evaluation_vectors(policies_dir: Path) -> Iterator[Any]:
    """A throw-away Chroma folder with the policies in `eval_policies` (never the live folder)."""
    from dispute_platform.resources.vectors import VectorStoreResource
    from dispute_platform.workflow.knowledge import load_policies

    with tempfile.TemporaryDirectory(prefix="dispute-eval-chroma-") as folder:
        vectors = VectorStoreResource(
            chroma_path=folder, resolutions_collection=EVAL_RESOLUTIONS, policies_collection=EVAL_POLICIES
        )
        load_policies(vectors, policies_dir)
        yield vectors


def _result(
    complaint: CfpbComplaint, context: EnrichedContext, outcome: Any, truth: str, price: Any, knn: dict[int, str], k: int
) -> DisputeResult:
    proposal: ResolutionProposal = outcome.proposal
    stopped = not outcome.within_caps
    amount, nominal = dispute_amount(complaint)
    return DisputeResult(
        row=complaint.row,
        case_id=complaint.case_id,
        issue=complaint.issue,
        sub_issue=complaint.sub_issue,
        dispute_type=context.crm.case.dispute_type,
        amount=amount,
        amount_nominal=nominal,
        company_response=complaint.company_response,
        truth=truth,
        action=proposal.action.value,
        proposed_amount=proposal.amount,
        confidence=proposal.confidence,
        basis=proposal.basis,
        raw_confidence=proposal.raw_confidence,
        calibration=proposal.calibration,
        predicted=metrics.predicted_label(proposal.action.value, stopped_by_cap=stopped),
        knn_predicted=knn.get(k),
        knn_by_k=knn,
        escalated=proposal.action.value == metrics.ESCALATE,
        stopped_by_cap=stopped,
        failed_caps=[c.name for c in outcome.caps if not c.passed],
        flags=proposal.flags,
        similar_cases=[c.case_id for c in outcome.cases],
        cited_policies=proposal.cited_policies,
        input_tokens=proposal.input_tokens,
        output_tokens=proposal.output_tokens,
        cost_usd=proposal.cost_usd,
        would_be_cost_usd=would_be_cost(price, outcome.prompt.input_tokens),
        model=proposal.model,
        latency_ms=proposal.latency_ms,
    )


def evaluate(options: EvaluationOptions, progress: Progress | None = None) -> EvaluationRun:
    """Run the whole evaluation and write report.json, report.md and results.jsonl."""
    from dispute_platform.evaluation.report import build_report, render_markdown
    from dispute_platform.settings import REPO_ROOT
    from dispute_platform.workflow.calibration import fit_calibration
    from dispute_platform.workflow.propose import propose, query_text

    say = progress or (lambda _message: None)
    started = time.perf_counter()
    if options.split is not None and not 0 < options.split < 1:
        raise EvaluationError(f"--split {options.split} must be between 0 and 1 (the share of rows used as history)")
    provider = make_provider(options.provider)

    complaints, problems, rows_read = read_file(options.complaints, "complaints", options.limit)
    say(f"read {rows_read} rows of {options.complaints}: {len(complaints)} complaints, {len(problems)} bad rows")
    history_source: list[CfpbComplaint] = []
    history_rows = 0
    if options.split is not None:
        history_source, complaints = split_complaints(complaints, options.split)
    from_split = len(history_source)
    if options.history is not None:
        extra, history_problems, history_rows = read_file(options.history, "history")
        problems += history_problems
        history_source += extra
    history, history_problems = history_records(history_source)
    problems += history_problems
    # A complaint never serves as its own precedent (retrieval excludes its case id too).
    evaluated_ids = {c.case_id for c in complaints}

    to_run: list[tuple[CfpbComplaint, str]] = []
    not_billing = 0
    for complaint in complaints:
        if options.billing_only and not complaint.is_billing_dispute:
            not_billing += 1
            continue
        label = outcome_label(complaint.company_response)
        if label is None:
            problems.append(Problem(stage="complaints", row=complaint.row, line=complaint.line, complaint_id=complaint.complaint_id,
                                    reason=outcome_problem(complaint.company_response) or "no outcome"))  # fmt: skip
            continue
        to_run.append((complaint, label))

    limits = proposal_limits()
    price = price_for(REFERENCE_MODEL)
    results: list[DisputeResult] = []
    prompts: list[list[dict[str, str]]] = []
    with evaluation_vectors(options.policies_dir or REPO_ROOT / "policies") as vectors:
        usable_history = [h for h in history if h.case_id not in evaluated_ids]
        history_vectors: dict[str, list[float]] = {}
        for start in range(0, len(usable_history), EMBED_BATCH):
            batch = usable_history[start : start + EMBED_BATCH]
            embedded = vectors.embedder.encode([h.embedding_text() for h in batch])
            vectors.upsert_resolutions(batch, embedded)
            history_vectors.update({h.case_id: v for h, v in zip(batch, embedded, strict=True)})
            say(
                f"history: embedded {min(start + EMBED_BATCH, len(usable_history))}/{len(usable_history)} past cases into {EVAL_RESOLUTIONS}"
            )
        # Calibrated on the history alone, the way the `proposal_calibration` asset fits it.
        calibration = (
            fit_calibration(vectors, usable_history, limits.precedent, embeddings=history_vectors) if usable_history else None
        )
        if calibration is not None:
            say(f"calibration {calibration.calibration_id}: {calibration.held_back} past cases held back, "
                f"money-back rate {calibration.money_back_rate}, maps {', '.join(calibration.maps) or 'none'}")  # fmt: skip
        contexts: list[tuple[CfpbComplaint, str, EnrichedContext]] = []
        for complaint, label in to_run:
            try:
                contexts.append((complaint, label, complaint_context(complaint)))
            except Exception as exc:  # noqa: BLE001 - a bad row is reported, never a crash
                problems.append(Problem(stage="replay", row=complaint.row, line=complaint.line, complaint_id=complaint.complaint_id,
                                        reason=f"cannot be replayed as a dispute: {_reason(exc)}"))  # fmt: skip
        query_vectors = vectors.embedder.encode([query_text(ctx) for _, _, ctx in contexts]) if contexts else []
        rate = calibration.money_back_rate if calibration is not None else None
        knn_ks = sorted({*KNN_SENSITIVITY_KS, limits.precedent.cases})
        for index, ((complaint, label, context), vector) in enumerate(zip(contexts, query_vectors, strict=True), start=1):
            try:
                outcome = propose(context, vectors, provider, None, limits, vector, calibration=calibration)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - one failing dispute must not end the evaluation
                problems.append(Problem(stage="propose", row=complaint.row, line=complaint.line, complaint_id=complaint.complaint_id,
                                        reason=f"proposal failed: {_reason(exc)}"))  # fmt: skip
                continue
            knn = {k: knn_vote(vectors, vector, complaint.case_id, k, rate) for k in knn_ks} if usable_history else {}
            results.append(_result(complaint, context, outcome, label, price, knn, limits.precedent.cases))
            prompts.append(outcome.prompt.messages)
            if index % 25 == 0 or index == len(contexts):
                say(f"proposed {index}/{len(contexts)}")
    for result, (_shared, cached) in zip(results, cached_tokens_in_sequence([prompt_tokens(m) for m in prompts]), strict=True):
        result.would_be_cached_input_tokens = cached
        result.would_be_cost_cached_usd = would_be_cost(price, result.input_tokens, cached_input_tokens=cached)

    report = build_report(
        results=results,
        problems=problems,
        history_truth=[metrics.MONEY_BACK if h.action != "deny" else metrics.NO_MONEY for h in usable_history],
        calibration=calibration,
        knn_k=limits.precedent.cases,
        meta={
            "complaints_file": str(options.complaints),
            "history_file": str(options.history) if options.history else None,
            "split": options.split,
            "provider": options.provider,
            "model": ", ".join(sorted({r.model for r in results})) or getattr(provider, "model", options.provider),
            "billing_only": options.billing_only,
            "limit": options.limit,
            "rows_read": rows_read,
            "history_rows_read": history_rows,
            "history_from_split": from_split,
            "history_cases": len(usable_history),
            "history_overlap_excluded": len(history) - len(usable_history),
            "not_billing_skipped": not_billing,
            "seconds": round(time.perf_counter() - started, 1),
            "reference_model": REFERENCE_MODEL,
            "limits": {
                "max_input_tokens": limits.budget.max_input_tokens,
                "max_output_tokens": limits.caps.max_output_tokens,
                "max_cost_usd": str(limits.caps.max_cost_usd),
            },
        },
    )
    files = write_outputs(options.out_dir, report, results, render_markdown(report))
    return EvaluationRun(report=report, results=results, problems=problems, files=files)


def knn_vote(vectors: Any, vector: Sequence[float], case_id: str, k: int, base_rate: float | None) -> str:
    """The plain k-nearest-neighbours baseline: the k most similar past cases of any type, by the
    same MiniLM vectors, a similarity-weighted vote balanced against the history's money-back
    rate; no rules, no escalation (a tie counts as no money)."""
    neighbours = vectors.query_similar_cases("", k=k, exclude_case_id=case_id, vector=vector)
    vote = tally(neighbours, PrecedentSettings(cases=k, min_cases=1, min_similarity=0.0, split_margin=0.0), base_rate)
    return metrics.MONEY_BACK if vote.side == MONEY_BACK else metrics.NO_MONEY


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text[:300]}" if text else exc.__class__.__name__


def write_outputs(out_dir: Path, report: dict[str, Any], results: Sequence[DisputeResult], markdown: str) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "report.json": out_dir / "report.json",
        "report.md": out_dir / "report.md",
        "results.jsonl": out_dir / "results.jsonl",
    }
    files["report.json"].write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    files["report.md"].write_text(markdown, encoding="utf-8")
    with files["results.jsonl"].open("w", encoding="utf-8") as fh:
        for result in results:
            fh.write(result.model_dump_json() + "\n")
    return files


__all__ = ["DisputeResult", "EvaluationError", "EvaluationOptions", "Problem", "evaluate"]
