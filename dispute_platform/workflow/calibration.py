"""Fit, store and load the proposal calibration (domain/calibration.py).

- Precedent (`precedent:money_back`, `precedent:no_money`): a held-back sample of the past cases,
  each put to the same vote a new dispute gets (the same retrieval from Chroma, itself excluded),
  against what really happened to it. The history's money-back rate, which the vote balances
  against, comes from the same fit.
- Policy and model (`policy:*`, `model:*`): the proposals reviewers decided, right when approved
  as proposed (decisions recorded by automation are left out: the platform must not learn from
  itself).

The `proposal_calibration` asset refits when the history changes; `propose` reads the newest fit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dispute_platform.domain.calibration import (
    ProposalCalibration,
    calibration_key,
    fit_isotonic,
    is_held_back,
    reliability_table,
)
from dispute_platform.domain.knowledge import HistoricalResolution
from dispute_platform.domain.models import Action
from dispute_platform.domain.precedent_vote import (
    ESCALATE,
    MONEY_BACK,
    NO_MONEY,
    PrecedentSettings,
    Tally,
    outcome_side,
    raw_confidence,
    tally,
)
from dispute_platform.domain.prompt import PromptBudget
from dispute_platform.resources.vectors import VectorStoreResource
from dispute_platform.store import calibration as sql
from dispute_platform.store.db import Database
from dispute_platform.workflow.propose import similar_cases

MAX_HELD_BACK = 2000  # past cases voted on per fit: enough for a stable map, a minute of queries at most


@dataclass(frozen=True)
class HeldBackVote:
    case_id: str
    truth: str  # money_back | no_money
    vote: Tally


@dataclass(frozen=True)
class HistorySample:
    """What a fit needs from the history: its size, its money-back rate, and the held-back cases
    (streamed from Postgres page by page, so memory stays flat however long the history is)."""

    cases: int
    money_back_rate: float | None
    held: list[HistoricalResolution]


def _decided(record: HistoricalResolution) -> bool:
    return outcome_side(record.action) in (MONEY_BACK, NO_MONEY)


def sample_history(pages: Iterable[Iterable[HistoricalResolution]], cases: int, money_back: int, decided: int,
                   max_held_back: int = MAX_HELD_BACK) -> HistorySample:  # fmt: skip
    """The held-back sample: about `max_held_back` decided cases, chosen by a digest of the id."""
    share = min(1.0, max_held_back / decided) if decided else 0.0
    held = [r for page in pages for r in page if _decided(r) and is_held_back(r.case_id, share)][:max_held_back]
    return HistorySample(cases=cases, money_back_rate=money_back / decided if decided else None, held=held)


def sample_records(records: Sequence[HistoricalResolution], max_held_back: int = MAX_HELD_BACK) -> HistorySample:
    sides = [outcome_side(r.action) for r in records]
    decided = sum(s in (MONEY_BACK, NO_MONEY) for s in sides)
    return sample_history([records], len(records), sum(s == MONEY_BACK for s in sides), decided, max_held_back)


def held_back_votes(
    vectors: VectorStoreResource,
    sample: HistorySample,
    settings: PrecedentSettings,
    *,
    embeddings: Mapping[str, Sequence[float]] | None = None,
    shown: int = PromptBudget().max_similar_cases,
) -> list[HeldBackVote]:
    """The vote each held-back past case gets from the others (Chroma holds the history)."""
    held = sample.held
    stored = dict(embeddings) if embeddings is not None else vectors.resolution_vectors([r.case_id for r in held])
    missing = [r for r in held if r.case_id not in stored]
    if missing:  # not (yet) in the index: embed them here rather than leave them out
        for record, vector in zip(missing, vectors.embedder.encode([r.embedding_text() for r in missing]), strict=True):
            stored[record.case_id] = vector
    votes = []
    for record in held:
        neighbours = similar_cases(
            vectors, record.embedding_text(), stored[record.case_id], record.dispute_type, record.case_id, shown, settings.cases
        )
        vote = tally(neighbours, settings, sample.money_back_rate)
        votes.append(HeldBackVote(case_id=record.case_id, truth=str(outcome_side(record.action)), vote=vote))
    return votes


def fit_calibration(
    vectors: VectorStoreResource,
    records: Sequence[HistoricalResolution] | HistorySample,
    settings: PrecedentSettings | None = None,
    *,
    reviewed: Sequence[Mapping[str, Any]] = (),
    embeddings: Mapping[str, Sequence[float]] | None = None,
    max_held_back: int = MAX_HELD_BACK,
    fitted_at: datetime | None = None,
) -> ProposalCalibration:
    """The calibration of `records` (the whole history, or a sample already drawn from it) and
    the reviewed proposals (`store.calibration.reviewed_proposals` rows)."""
    settings = settings or PrecedentSettings()
    sample = records if isinstance(records, HistorySample) else sample_records(records, max_held_back)
    votes = held_back_votes(vectors, sample, settings, embeddings=embeddings)
    pairs: dict[str, tuple[list[float], list[bool]]] = {}
    for held in votes:
        if held.vote.side == ESCALATE:
            continue  # thin or split: no proposal would be made, so nothing to calibrate
        xs, ys = pairs.setdefault(f"precedent:{held.vote.side}", ([], []))
        xs.append(raw_confidence(held.vote))
        ys.append(held.vote.side == held.truth)
    for row in reviewed:
        basis = row.get("basis")
        if basis not in ("policy", "model") or row.get("raw_confidence") is None:
            continue
        try:
            key = calibration_key(basis, Action(row["action"]))
        except ValueError:
            continue
        if key is None:
            continue
        xs, ys = pairs.setdefault(key, ([], []))
        xs.append(float(row["raw_confidence"]))
        ys.append(row["decision"] == "approved")
    maps = {key: fitted for key, (xs, ys) in sorted(pairs.items()) if (fitted := fit_isotonic(key, xs, ys)) is not None}
    rate = sample.money_back_rate
    return ProposalCalibration(
        fitted_at=fitted_at or datetime.now(UTC),
        money_back_rate=round(rate, 6) if rate is not None else None,
        history_cases=sample.cases,
        held_back=len(votes),
        maps=maps,
        reliability={key: reliability_table(xs, ys) for key, (xs, ys) in sorted(pairs.items())},
    ).with_id()


def load_calibration(db: Database) -> ProposalCalibration | None:
    """The newest stored calibration, or None before the first fit."""
    row = db.transact(sql.latest_calibration)
    return ProposalCalibration.model_validate(row["calibration"]) if row is not None else None


def read_sample(db: Database, max_held_back: int = MAX_HELD_BACK) -> HistorySample:
    """The held-back sample of the history in Postgres, streamed (see `HistorySample`)."""
    from dispute_platform.store.history import iter_history
    from dispute_platform.workflow.knowledge import EMBED_BATCH

    counts = db.transact(sql.history_counts)
    return sample_history(
        iter_history(db, page=EMBED_BATCH), counts["cases"], counts["money_back"], counts["decided"], max_held_back
    )


def history_version(db: Database, vectors: VectorStoreResource) -> str:
    """What a calibration depends on: the past cases and the model that embedded them."""
    from dispute_platform.workflow.reembed import current_model_identity

    digest, _ = db.transact(sql.history_version)
    identity = current_model_identity(vectors.embedding_model)  # without loading the model
    return hashlib.sha256(f"{digest}|{identity}".encode()).hexdigest()[:32]


def stored_history_version(db: Database) -> str | None:
    row = db.transact(sql.latest_calibration)
    return row["history_version"] if row is not None else None


def refit(
    db: Database, vectors: VectorStoreResource, settings: PrecedentSettings | None = None, *, run_id: str | None = None
) -> tuple[ProposalCalibration, str]:
    """Fit from Postgres (history and reviews) and the Chroma index, store it; returns it and
    the history version it was fitted on (read first: a change during the fit makes the next
    check refit again, never the other way round)."""
    version = history_version(db, vectors)
    sample = read_sample(db)
    reviewed = db.transact(sql.reviewed_proposals)
    calibration = fit_calibration(vectors, sample, settings, reviewed=reviewed)
    db.transact(
        lambda cur: sql.save_calibration(
            cur,
            calibration.model_dump(mode="json"),
            history_version=version,
            history_cases=calibration.history_cases,
            held_back=calibration.held_back,
            run_id=run_id,
        )
    )
    return calibration, version
