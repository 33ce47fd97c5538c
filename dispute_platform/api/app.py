"""The decision endpoint (FastAPI): reviewers read pending proposals and decide. The review desk
(server-rendered pages for people, `desk.py`) is mounted on the same app at /desk.

Every route but /health needs a bearer token; the token names the reviewer record, and that record
is what is recorded (a `reviewer_name` in the body is ignored). Answers: 401 bad, missing or revoked
token, 404 unknown dispute, 409 not pending / stale version / already decided, 422 a body that does
not hold. A reviewer who prefers the Dagster launchpad asks here for a single-use decision ticket.
"""

import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from dispute_platform import __version__
from dispute_platform.api.desk import DeskConfig, create_desk
from dispute_platform.daemon_status import DaemonState, DaemonWatch
from dispute_platform.domain.models import CASE_ID_PATTERN, CleanText, ModifiedResolution
from dispute_platform.domain.review import DecisionRefused
from dispute_platform.local import database
from dispute_platform.resources.limits import Limits
from dispute_platform.settings import Settings
from dispute_platform.store import actions as actions_store
from dispute_platform.store import repo
from dispute_platform.store import reviewers as reviewer_store
from dispute_platform.store.db import Database
from dispute_platform.store.executions import executions_for
from dispute_platform.store.proposals import token_totals
from dispute_platform.store.reviewers import Reviewer
from dispute_platform.store.states import state_by_run
from dispute_platform.workflow.auto_lane import review_after_the_fact
from dispute_platform.workflow.review import issue_decision_ticket, record_decision, resolve_case_id

CaseIdPath = Annotated[str, Path(pattern=CASE_ID_PATTERN)]
_bearer = HTTPBearer(auto_error=False)


class DecisionBody(BaseModel):
    """The seed's body, plus the proposal version it answers."""

    model_config = ConfigDict(extra="forbid")

    run_id: uuid.UUID | None = None
    case_id: Annotated[str, StringConstraints(pattern=CASE_ID_PATTERN)] | None = None
    decision: Literal["approved", "rejected", "modified"]
    reviewer_name: Annotated[CleanText, StringConstraints(max_length=255)] | None = Field(
        default=None, description="Ignored: the reviewer is the token's."
    )
    comments: Annotated[CleanText, StringConstraints(max_length=5000)] = ""
    modified_resolution: ModifiedResolution | None = None
    proposal_version: int = Field(ge=1, le=1_000_000, description="The proposal version this decision answers.")


class TicketBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_id: Annotated[str, StringConstraints(pattern=CASE_ID_PATTERN)]
    proposal_version: int = Field(ge=1, le=1_000_000, description="The proposal version the launchpad decision answers.")


class AfterTheFactBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Literal["upheld", "reversed"]
    comments: Annotated[CleanText, StringConstraints(max_length=5000)] = ""


class TicketAnswer(BaseModel):
    ticket: str
    case_id: str
    proposal_version: int
    reviewer: str
    expires_at: str
    launchpad_config: str


class DecisionAnswer(BaseModel):
    status: Literal["recorded"]
    decision_id: int
    case_id: str
    proposal_version: int
    final: bool
    dispute_status: str
    effective_action: str
    effective_amount: Decimal
    reviewer: str
    message: str


class _AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a 422 echoes the rejected input, and a lone surrogate in it
    (a JSON "\\ud800") cannot be encoded as UTF-8, which made the error answer itself a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _jsonable(row: dict | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Decimal):
            out[key] = str(value)
        elif isinstance(value, uuid.UUID):
            out[key] = str(value)
        elif hasattr(value, "isoformat"):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


def create_app(
    db: Database,
    *,
    limits: Limits,
    queue_ping: Any = None,
    daemon_state: Callable[[], DaemonState] | None = None,
    desk: DeskConfig | None = None,
) -> FastAPI:
    """The endpoint; with `desk`, the review desk at /desk too. `daemon_state` tells /health (and
    the desk) whether a Dagster daemon is there to execute what reviewers decide."""
    app = FastAPI(
        title="dispute_platform decision endpoint",
        version=__version__,
        description="Human review of billing-dispute proposals. Authenticate with `Authorization: Bearer <token>` "
        "(tokens come from `dispute-platform reviewer add NAME`).",
    )

    def reviewer(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Reviewer:
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        found = db.transact(lambda cur: reviewer_store.reviewer_for_token(cur, credentials.credentials))
        if found is None:
            raise HTTPException(401, "unknown or revoked reviewer token", headers={"WWW-Authenticate": "Bearer"})
        return found

    Authenticated = Annotated[Reviewer, Depends(reviewer)]

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _AsciiJSONResponse(status_code=422, content={"detail": jsonable_encoder(exc.errors())})

    @app.exception_handler(DecisionRefused)
    async def refused(_: Request, exc: DecisionRefused) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.reason})

    @app.get("/health", tags=["operations"])
    def health() -> JSONResponse:
        database = db.ping()
        queue = True
        if queue_ping is not None:
            try:
                queue_ping()
            except Exception:  # noqa: BLE001 - reported as unreachable
                queue = False
        healthy = database and queue
        content: dict[str, Any] = {"status": "ok" if healthy else "degraded", "database": database, "queue": queue,
                                   "version": __version__}  # fmt: skip
        if daemon_state is not None:
            # Reported, not a 503: the endpoint itself works (decisions are recorded), and a load
            # balancer must not take it away because the daemon is elsewhere or restarting.
            daemon = daemon_state()
            content["daemon"] = {"running": daemon.running, "detail": daemon.detail}
            if daemon.running is False:
                content["status"] = "degraded"
        return JSONResponse(status_code=200 if healthy else 503, content=content)

    @app.get("/human-review/pending", tags=["review"])
    def pending(_: Authenticated) -> dict[str, Any]:
        rows = db.transact(repo.pending_reviews)
        items = []
        for row in rows:
            item = _jsonable(row) or {}
            item["age_hours"] = round(float(row["age_hours"]), 2)
            item["escalated"] = row["status"] == "review_escalated"
            items.append(item)
        return {"count": len(items), "pending": items}

    @app.post("/human-review/decision", tags=["review"], response_model=DecisionAnswer)
    def decide(body: DecisionBody, who: Authenticated) -> DecisionAnswer:
        case_id = resolve_case_id(db, body.case_id, str(body.run_id) if body.run_id else None)
        recorded = record_decision(
            db,
            case_id=case_id,
            decision=body.decision,
            reviewer=who,
            comments=body.comments,
            proposal_version=body.proposal_version,
            modified=body.modified_resolution,
            source="api",
            limits=limits,
        )
        outcome = recorded.outcome
        message = (
            "decision recorded; the review sensor starts execution"
            if outcome.final
            else "first approval recorded; a second, different reviewer must approve (four-eyes)"
        )
        return DecisionAnswer(
            status="recorded",
            decision_id=recorded.decision_id,
            case_id=case_id,
            proposal_version=recorded.proposal_version,
            final=outcome.final,
            dispute_status=outcome.new_status.value,
            effective_action=outcome.effective_action,
            effective_amount=outcome.effective_amount,
            reviewer=who.name,
            message=message,
        )

    @app.post("/human-review/tickets", tags=["review"], response_model=TicketAnswer)
    def ticket(body: TicketBody, who: Authenticated) -> TicketAnswer:
        """A single-use, short-lived ticket for deciding one dispute's current proposal in the Dagster
        launchpad (materialise review_decision for that partition with the ticket in its config)."""
        issued = issue_decision_ticket(db, who, body.case_id, body.proposal_version, limits, via="api")
        config = (
            "ops:\n  review_decision:\n    config:\n"
            f"      ticket: {issued.ticket}\n      decision: approved   # or rejected | modified\n"
            f"      proposal_version: {issued.proposal_version}\n      comments: ''\n"
        )
        return TicketAnswer(
            ticket=issued.ticket,
            case_id=issued.case_id,
            proposal_version=issued.proposal_version,
            reviewer=who.name,
            expires_at=issued.expires_at.isoformat(),
            launchpad_config=config,
        )

    @app.get("/human-review/auto-approvals", tags=["review"])
    def auto_approvals(_: Authenticated) -> dict[str, Any]:
        """Auto-approvals by the policy lane sampled for a reviewer's look after the fact."""
        rows = db.transact(lambda cur: actions_store.sampled_awaiting_review(cur))
        return {"count": len(rows), "auto_approvals": [_jsonable(r) for r in rows]}

    @app.post("/human-review/auto-approvals/{case_id}", tags=["review"])
    def review_auto_approval(case_id: CaseIdPath, body: AfterTheFactBody, who: Authenticated) -> dict[str, Any]:
        """Uphold or reverse an auto-approval: recorded as a new, audited dispute action (a reversal
        moves no money by itself; it is the record people follow up on)."""
        action_id = review_after_the_fact(db, case_id, who, body.verdict, body.comments)
        return {"status": "recorded", "case_id": case_id, "verdict": body.verdict, "action_id": action_id, "reviewer": who.name}

    def _state_by_run(run_id: str) -> dict:
        row = db.transact(lambda cur: state_by_run(cur, run_id))
        if row is None:
            raise HTTPException(404, f"no workflow {run_id}")
        return row

    def _state_by_case(case_id: str) -> dict:
        row = db.transact(lambda cur: repo.workflow_state(cur, case_id))
        if row is None:
            raise HTTPException(404, f"no dispute {case_id}")
        return row

    def _steps(case_id: str) -> list[dict]:
        return [_jsonable(r) for r in db.transact(lambda cur: repo.audit_trail(cur, case_id))]

    @app.get("/workflow/{run_id}/status", tags=["disputes"])
    def workflow_status(run_id: str, _: Authenticated) -> dict[str, Any]:
        state = _state_by_run(run_id)
        return {
            "run_id": str(state["run_id"]),
            "case_id": state["case_id"],
            "status": state["status"],
            "current_step": state["current_step"],
            "status_reason": state["status_reason"],
            "proposal_version": state["proposal_version"],
            "updated_at": state["updated_at"].isoformat(),
            "completed_at": state["completed_at"].isoformat() if state["completed_at"] else None,
            # Archived: out of Dagster's partition set (retention); every row here is kept.
            "archived_at": state["archived_at"].isoformat() if state["archived_at"] else None,
            "steps": _steps(state["case_id"]),
        }

    @app.get("/disputes/{case_id}", tags=["disputes"])
    def dispute(case_id: CaseIdPath, _: Authenticated) -> dict[str, Any]:
        state = _state_by_case(case_id)
        proposal = db.transact(lambda cur: repo.latest_proposal(cur, case_id))
        return {
            "case_id": case_id,
            "run_id": str(state["run_id"]),
            "status": state["status"],
            "current_step": state["current_step"],
            "status_reason": state["status_reason"],
            "dispute_type": state["dispute_type"],
            "segment": state["segment"],
            "disputed_amount": str(state["disputed_amount"]) if state["disputed_amount"] is not None else None,
            "currency": state["currency"],
            "validation": state["validation"],
            "proposal": _jsonable(proposal),
            "decisions": [_jsonable(d) for d in db.transact(lambda cur: reviewer_store.decisions_for(cur, case_id))],
            "executions": [_jsonable(e) for e in db.transact(lambda cur: executions_for(cur, case_id))],
            "final_resolution": state["final_resolution"],
            "archived_at": state["archived_at"].isoformat() if state["archived_at"] else None,
            "steps": _steps(case_id),
        }

    def _costs(states: list[dict]) -> dict[str, Any]:
        case_ids = [s["case_id"] for s in states]
        by_case = db.transact(lambda cur: token_totals(cur, case_ids))
        workflows = []
        for s in states:
            t = by_case.get(s["case_id"], {})
            workflows.append(
                {
                    "run_id": str(s["run_id"]),
                    "case_id": s["case_id"],
                    "llm_cost": str(s["llm_cost"]),
                    "total_cost": str(s["total_cost"]),
                    "cost_breakdown": s["cost_breakdown"],
                    "input_tokens": int(t.get("input_tokens") or 0),
                    "output_tokens": int(t.get("output_tokens") or 0),
                    "proposals": int(t.get("proposals") or 0),
                    "cache_hits": int(t.get("cache_hits") or 0),
                }
            )
        return {
            "llm_cost": str(sum((s["llm_cost"] for s in states), Decimal("0"))),
            "total_cost": str(sum((s["total_cost"] for s in states), Decimal("0"))),
            "workflows": workflows,
        }

    @app.get("/costs/workflow/{run_id}", tags=["costs"])
    def costs_workflow(run_id: str, _: Authenticated) -> dict[str, Any]:
        return _costs([_state_by_run(run_id)])

    @app.get("/costs/case/{case_id}", tags=["costs"])
    def costs_case(case_id: CaseIdPath, _: Authenticated) -> dict[str, Any]:
        return {"case_id": case_id, **_costs([_state_by_case(case_id)])}

    if desk is not None:
        app.mount("/desk", create_desk(db, desk, daemon_state), name="desk")
        # A plain Starlette route (not in the OpenAPI schema): the bare address leads people to the desk.
        app.add_route("/", lambda _request: RedirectResponse("/desk/", status_code=307), include_in_schema=False)
    return app


def app_from_environment() -> FastAPI:
    """The app the `dispute-platform api` command serves (uvicorn factory)."""
    from dispute_platform.settings import get_settings

    settings = get_settings()
    queue_ping = None
    if settings.dispute_events_queue_url:
        from dispute_platform.definitions import build_resources

        sqs = build_resources(settings)["sqs"]
        queue_ping = sqs.approximate_depth
    return create_app(
        database(settings),
        limits=Limits.from_settings(settings),
        queue_ping=queue_ping,
        daemon_state=DaemonWatch(),
        desk=desk_config(settings),
    )


def desk_config(settings: Settings) -> DeskConfig:
    return DeskConfig(
        limits=Limits.from_settings(settings),
        sla_hours=settings.review_sla_hours,
        session_hours=settings.desk_session_hours,
        cookie_secure=settings.desk_cookie_secure,
        policies_dir=settings.policies_dir,
    )
