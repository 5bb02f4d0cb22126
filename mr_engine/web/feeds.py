"""``GET /calendars/<name>.ics``: a resource's bookings as an ICS feed to subscribe to.

Thunderbird, Apple Calendar and Google fetch it again now and then; each VEVENT keeps its
UID (and RECURRENCE-ID), so they update their copy. What a VEVENT shows is the resource's
``calendar_details``; a resource with a calendar token answers 403 without ``?token=``.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from sqlalchemy.orm import Session

from mr_engine.core.freebusy import TimeRange
from mr_engine.services import availability
from mr_engine.store.directories import Directory

from .context import context_of
from .ics import calendar_answer
from .params import time_range
from .resources import find_resource, require_token

routes = web.RouteTableDef()


@routes.get("/calendars/{name}.ics")
async def calendar_feed(request: web.Request) -> web.Response:
    context = context_of(request)
    now = context.now()
    span = time_range(request.query, now)
    text = await context.read(_feed, request.match_info["name"], dict(request.query), span,
                              now)
    return calendar_answer(text)


def _feed(session: Session, directory: Directory, name: str, query: dict[str, str],
          span: TimeRange, now: dt.datetime) -> str:
    resource = find_resource(directory, name)
    require_token(query, resource)
    return availability.feed_text(session, resource, span, now)
