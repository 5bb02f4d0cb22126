"""The approval page: ``GET /approvals/<token>`` shows a request waiting for approval, with
Approve and Decline buttons; only ``POST /approvals/<token>`` decides (RFC 9110 §9.2.1: GET
is safe, so a link previewer or a crawler that follows the mailed link changes nothing).

Whoever holds the link may decide: the token in it is unguessable and names one pending
approval (``core.approval_tokens``), so it is the credential, as a password-reset link is.
A token this engine did not make is 404, one already decided, replaced or expired 410, both
a single line.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.orm import Session

from mr_engine.services import approvals
from mr_engine.services.meeting_requests import queue_replies
from mr_engine.store.approvals import ApprovalError

from .context import WebContext, context_of
from .errors import BadRequest, HttpProblem, NotFound
from .pages import html

routes = web.RouteTableDef()

DECISIONS = {"approve": True, "decline": False}


class Gone(HttpProblem):
    status = 410


def _problem(exc: ApprovalError) -> HttpProblem:
    if isinstance(exc, approvals.UnknownToken):
        return NotFound("no such approval")
    return Gone(str(exc))


@routes.get("/approvals/{token}")
async def show(request: web.Request) -> web.Response:
    ctx = context_of(request)
    token = request.match_info["token"]
    try:
        asked = await ctx.read(lambda session, _directory: approvals.shown(
            session, token, ctx.settings, ctx.now()))
    except ApprovalError as exc:
        raise _problem(exc) from None
    return html("approval.html", asked=asked, token=token, done=None)


@routes.post("/approvals/{token}")
async def decide(request: web.Request) -> web.Response:
    ctx = context_of(request)
    token = request.match_info["token"]
    form = await request.post()
    decision = str(form.get("decision", ""))
    if decision not in DECISIONS:
        raise BadRequest("the form's decision must be approve or decline")
    comment = str(form.get("comment", ""))
    try:
        done = await ctx.write(lambda session: _decide(session, ctx, token, decision, comment))
    except ApprovalError as exc:
        raise _problem(exc) from None
    return html("approval.html", asked=None, token=token, done=done)


def _decide(session: Session, ctx: WebContext, token: str, decision: str,
            comment: str) -> approvals.Decided:
    now = ctx.now()
    done = approvals.decide_by_token(session, token, DECISIONS[decision], comment,
                                     ctx.settings, now)
    queue_replies(session, done.replies, now)
    return done
