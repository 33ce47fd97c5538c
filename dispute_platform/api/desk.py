"""The review desk: server-rendered pages for reviewers, mounted at /desk on the decision endpoint.

Sign-in exchanges a reviewer's bearer token for a session (store/sessions.py): an HTTP-only,
Secure, SameSite=Lax cookie scoped to /desk, whose digest is stored in Postgres with its expiry
and its CSRF token. Every form carries that CSRF token; a POST without it, with another one, or
with a session that expired or was signed out changes nothing. The sign-in form itself is
protected by a double-submit token (a short-lived cookie and the same value in the form).

Decisions go through `record_decision`, the function the JSON endpoint and the launchpad use, so
the rules are the same; its 409 and 422 refusals are shown as messages on the dispute's page.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, StringConstraints, ValidationError

from dispute_platform.api.desk_views import PolicyLibrary, dispute_view, queue_view
from dispute_platform.daemon_status import DaemonState
from dispute_platform.domain.models import CASE_ID_PATTERN, CleanText, ModifiedResolution
from dispute_platform.domain.review import DecisionRefused
from dispute_platform.resources.limits import Limits
from dispute_platform.store import repo, sessions
from dispute_platform.store import reviewers as reviewer_store
from dispute_platform.store.db import Database
from dispute_platform.store.reviewers import IssuedTicket, Reviewer
from dispute_platform.store.sessions import DeskReviewer
from dispute_platform.workflow.review import RecordedDecision, issue_decision_ticket, record_decision

HERE = Path(__file__).parent
SESSION_COOKIE = "dp_desk_session"
SIGNIN_COOKIE = "dp_desk_signin"
COOKIE_PATH = "/desk"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
CaseId = Annotated[str, PathParam(pattern=CASE_ID_PATTERN)]


@dataclass(frozen=True)
class DeskConfig:
    limits: Limits
    sla_hours: float
    session_hours: float
    cookie_secure: bool
    policies_dir: Path


class DecisionForm(BaseModel):
    """The desk's decision form, held to the JSON body's limits."""

    decision: str
    proposal_version: int
    comments: Annotated[CleanText, StringConstraints(max_length=5000)] = ""
    modified: ModifiedResolution | None = None


def _safe_next(target: str | None) -> str:
    # Only a path inside the desk: never an absolute URL (no open redirect through sign-in).
    if target and target.startswith(f"{COOKIE_PATH}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{COOKIE_PATH}/"


def create_desk(db: Database, config: DeskConfig, daemon_state: Any = None) -> FastAPI:
    desk = FastAPI(title="review desk", docs_url=None, redoc_url=None, openapi_url=None)
    desk.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    policies = PolicyLibrary(config.policies_dir)

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        daemon: DaemonState | None = daemon_state() if daemon_state is not None else None
        response = templates.TemplateResponse(
            request,
            name,
            {"daemon": daemon, "threshold": config.limits.escalation_threshold_usd, **context},
            status_code=status_code,
        )
        response.headers.update(SECURITY_HEADERS)
        return response

    def to_sign_in(request: Request, reason: str = "") -> RedirectResponse:
        query = {"next": request.url.path + (f"?{request.url.query}" if request.url.query else "")}
        if reason:
            query["reason"] = reason
        response = RedirectResponse(f"{COOKIE_PATH}/sign-in?{urlencode(query)}", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        return response

    def _session(request: Request) -> sessions.SessionLookup:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return sessions.SessionLookup("unknown")
        return db.transact(lambda cur: sessions.lookup_session(cur, cookie))

    def _reviewer_from_session(request: Request) -> tuple[DeskReviewer | None, sessions.SessionLookup]:
        """The one place the desk learns who is deciding: the session's reviewers row."""
        lookup = _session(request)
        return (lookup.reviewer if lookup.active else None), lookup

    def _decide(case_id: str, reviewer: DeskReviewer, form: DecisionForm) -> RecordedDecision:
        """The one place the desk records a decision: the endpoint's and the launchpad's rules."""
        return record_decision(
            db,
            case_id=case_id,
            decision=form.decision,
            reviewer=Reviewer(reviewer.id, reviewer.name),
            comments=form.comments,
            proposal_version=form.proposal_version,
            modified=form.modified,
            source="desk",
            limits=config.limits,
        )

    def _csrf_ok(lookup: sessions.SessionLookup, sent: str | None) -> bool:
        return bool(sent) and lookup.csrf_token is not None and hmac.compare_digest(sent or "", lookup.csrf_token)

    def refuse_post(request: Request, lookup: sessions.SessionLookup) -> HTMLResponse:
        messages = {
            "expired": "Your session expired. Sign in again; nothing was recorded.",
            "ended": "This session was signed out. Sign in again; nothing was recorded.",
            "disabled": "Your reviewer account is disabled; nothing was recorded.",
        }
        text = messages.get(lookup.state, "You are not signed in; nothing was recorded.")
        response = render(request, "message.html", 401, title="Sign in again", message=text, signed_in=None)
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        return response

    # --- sign-in and sign-out ------------------------------------------------------------------

    @desk.get("/sign-in", response_class=HTMLResponse)
    def sign_in_page(request: Request, next: str | None = None, reason: str | None = None) -> HTMLResponse:
        return _sign_in_form(request, _safe_next(next), reason_text(reason), 200)

    def reason_text(reason: str | None) -> str:
        return {
            "expired": "Your session expired: sign in again.",
            "ended": "You were signed out: sign in again.",
            "disabled": "Your reviewer account is disabled.",
        }.get(reason or "", "")

    def _sign_in_form(request: Request, next_path: str, error: str, status_code: int) -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        response = render(request, "sign_in.html", status_code, csrf=token, next=next_path, error=error, signed_in=None)
        response.set_cookie(
            SIGNIN_COOKIE, token, max_age=900, path=COOKIE_PATH, httponly=True, secure=config.cookie_secure, samesite="strict"
        )
        return response

    @desk.post("/sign-in")
    def sign_in(
        request: Request,
        token: Annotated[str, Form(max_length=512)] = "",
        csrf: Annotated[str, Form(max_length=128)] = "",
        next: Annotated[str, Form(max_length=2048)] = "",
    ) -> Response:
        expected = request.cookies.get(SIGNIN_COOKIE) or ""
        if not expected or not hmac.compare_digest(csrf, expected):
            return _sign_in_form(
                request, _safe_next(next), "The sign-in form expired or was not sent by this page: try again.", 403
            )
        reviewer = db.transact(lambda cur: sessions.reviewer_for_token(cur, token.strip())) if token.strip() else None
        if reviewer is None:
            return _sign_in_form(request, _safe_next(next), "Unknown or disabled reviewer token.", 401)

        def open_(cur) -> sessions.NewSession:
            sessions.purge_old_sessions(cur)
            return sessions.open_session(cur, reviewer, config.session_hours)

        new = db.transact(open_)
        response = RedirectResponse(_safe_next(next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            new.session_id,
            max_age=int(config.session_hours * 3600),
            path=COOKIE_PATH,
            httponly=True,
            secure=config.cookie_secure,
            samesite="lax",  # the e-mail's link (a top-level GET from elsewhere) must arrive signed in
        )
        response.delete_cookie(SIGNIN_COOKIE, path=COOKIE_PATH)
        return response

    @desk.post("/sign-out")
    def sign_out(request: Request, csrf: Annotated[str, Form(max_length=128)] = "") -> Response:
        reviewer, lookup = _reviewer_from_session(request)
        if reviewer is None:
            return to_sign_in(request)
        if not _csrf_ok(lookup, csrf):
            return render(request, "message.html", 403, title="Refused", signed_in=reviewer, csrf=lookup.csrf_token,
                          message="The sign-out form did not carry this session's token; you are still signed in.")  # fmt: skip
        cookie = request.cookies.get(SESSION_COOKIE, "")
        db.transact(lambda cur: sessions.end_session(cur, cookie))
        response = RedirectResponse(f"{COOKIE_PATH}/sign-in?reason=ended", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
        return response

    # --- the queue -----------------------------------------------------------------------------

    @desk.get("/", response_class=HTMLResponse)
    def queue(request: Request, sort: str = "sla", order: str = "asc") -> Response:
        reviewer, lookup = _reviewer_from_session(request)
        if reviewer is None:
            return to_sign_in(request, lookup.state if lookup.state != "unknown" else "")
        sort = sort if sort in ("age", "amount", "sla") else "sla"
        order = order if order in ("asc", "desc") else "asc"
        rows = db.transact(lambda cur: queue_view(cur, sla_hours=config.sla_hours, sort=sort, order=order))
        return render(request, "queue.html", rows=rows, sort=sort, order=order, signed_in=reviewer, csrf=lookup.csrf_token,
                      sla_hours=config.sla_hours)  # fmt: skip

    # --- one dispute ---------------------------------------------------------------------------

    def dispute_page(
        request: Request, case_id: str, reviewer: DeskReviewer, csrf: str | None, *, status_code: int = 200,
        error: str = "", notice: str = "", form: dict | None = None, ticket: IssuedTicket | None = None,
    ) -> HTMLResponse:  # fmt: skip
        view = db.transact(lambda cur: dispute_view(cur, case_id, reviewer=reviewer, limits=config.limits, policies=policies))
        if view is None:
            return render(request, "message.html", 404, title="Not found", message=f"No dispute {case_id}.",
                          signed_in=reviewer, csrf=csrf)  # fmt: skip
        return render(request, "dispute.html", status_code, v=view, signed_in=reviewer, csrf=csrf, error=error,
                      notice=notice, form=form or {}, ticket=ticket)  # fmt: skip

    @desk.get("/disputes/{case_id}", response_class=HTMLResponse)
    def dispute(request: Request, case_id: CaseId, recorded: int | None = None) -> Response:
        reviewer, lookup = _reviewer_from_session(request)
        if reviewer is None:
            return to_sign_in(request, lookup.state if lookup.state != "unknown" else "")
        notice = ""
        if recorded is not None:
            notice = _recorded_notice(case_id, recorded)
        return dispute_page(request, case_id, reviewer, lookup.csrf_token, notice=notice)

    def _recorded_notice(case_id: str, decision_id: int) -> str:
        row = db.transact(lambda cur: reviewer_store.decision_of(cur, case_id, decision_id))
        if row is None:
            return ""
        state = db.transact(lambda cur: repo.workflow_state(cur, case_id))
        if state and state["status"] == "awaiting_second_review":
            return (f"{row['reviewer']}'s approval is recorded ({row['effective_action']} {row['effective_amount']}): "
                    "a second, different reviewer must approve it (four-eyes).")  # fmt: skip
        return f"{row['reviewer']}'s decision ({row['decision']}) is recorded; the review sensor starts execution."

    @desk.post("/disputes/{case_id}/decision")
    async def decide(request: Request, case_id: CaseId) -> Response:
        reviewer, lookup = _reviewer_from_session(request)
        if reviewer is None:
            return refuse_post(request, lookup)
        raw = await request.form()
        fields = {k: v for k, v in raw.items() if isinstance(v, str)}
        if not _csrf_ok(lookup, fields.get("csrf")):
            return dispute_page(request, case_id, reviewer, lookup.csrf_token, status_code=403, form=fields,
                                error="Refused: the form did not carry this session's security token. Nothing was recorded; "
                                      "reload the page and decide again.")  # fmt: skip
        try:
            form = _parse_decision(fields)
        except ValueError as exc:
            return dispute_page(request, case_id, reviewer, lookup.csrf_token, status_code=422, error=str(exc), form=fields)
        try:
            recorded = _decide(case_id, reviewer, form)
        except DecisionRefused as refused:
            return dispute_page(request, case_id, reviewer, lookup.csrf_token, status_code=refused.status_code,
                                error=_refusal_text(refused), form=fields)  # fmt: skip
        return RedirectResponse(f"{COOKIE_PATH}/disputes/{quote(case_id)}?recorded={recorded.decision_id}", status_code=303)

    @desk.post("/disputes/{case_id}/ticket")
    async def ticket(request: Request, case_id: CaseId) -> Response:
        """A single-use launchpad ticket for the signed-in reviewer (the endpoint's POST /human-review/tickets)."""
        reviewer, lookup = _reviewer_from_session(request)
        if reviewer is None:
            return refuse_post(request, lookup)
        fields = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        if not _csrf_ok(lookup, fields.get("csrf")):
            return dispute_page(request, case_id, reviewer, lookup.csrf_token, status_code=403,
                                error="Refused: the form did not carry this session's security token. Reload the page.")  # fmt: skip
        try:
            version = int(fields.get("proposal_version", ""))
            issued = issue_decision_ticket(db, Reviewer(reviewer.id, reviewer.name), case_id, version, config.limits, via="desk")
        except ValueError:
            return dispute_page(request, case_id, reviewer, lookup.csrf_token, status_code=422,
                                error="The form lost the proposal version: reload the page.")  # fmt: skip
        except DecisionRefused as refused:
            return dispute_page(request, case_id, reviewer, lookup.csrf_token, status_code=refused.status_code,
                                error=_refusal_text(refused))  # fmt: skip
        return dispute_page(request, case_id, reviewer, lookup.csrf_token, ticket=issued)

    return desk


def _refusal_text(refused: DecisionRefused) -> str:
    if refused.status_code == 409:
        return f"Not recorded: {refused.reason}. The dispute changed since this page was loaded; the page now shows it as it is."
    if refused.status_code == 422:
        return f"Not recorded: {refused.reason}."
    return f"Not recorded ({refused.status_code}): {refused.reason}."


def _parse_decision(fields: dict[str, str]) -> DecisionForm:
    """The form's fields as a DecisionForm; a ValueError says what is wrong in words."""
    decision = fields.get("decision", "")
    if decision not in ("approved", "rejected", "modified"):
        raise ValueError("Choose approve, reject or modify.")
    try:
        version = int(fields.get("proposal_version", ""))
    except ValueError:
        raise ValueError("The form lost the proposal version it answers: reload the page.") from None
    modified = None
    if decision == "modified":
        try:
            amount = Decimal(fields.get("amount", "").strip() or "x")
        except InvalidOperation:
            raise ValueError("Modify needs an amount (a number such as 25.00; 0 for a denial).") from None
        try:
            modified = ModifiedResolution(action=fields.get("action", ""), amount=amount, reason=fields.get("reason", ""))
        except ValidationError as exc:
            raise ValueError(
                "Modify: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            ) from None
    try:
        return DecisionForm(decision=decision, proposal_version=version, comments=fields.get("comments", ""), modified=modified)
    except ValidationError as exc:
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
