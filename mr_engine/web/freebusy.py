"""``GET /freebusy/<address>[.vfb|.ifb]``: a resource's (or a pool's: busy where no member is
free) VFREEBUSY, as calendar clients fetch it.

Outlook's "Internet Free/Busy" search location ``.../freebusy/%NAME%@%SERVER%.vfb`` and
Evolution's ``.../freebusy/%u@%d.ifb`` (or bare) name the resource by address; its user
name works too. Free/busy tells only when a resource is taken, so it needs no token.
``?start=`` and ``?end=`` choose the range (``params.time_range``).
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from sqlalchemy.orm import Session

from mr_engine.core.freebusy import TimeRange
from mr_engine.services import availability
from mr_engine.store.calendar_owners import QuickOwners
from mr_engine.store.directories import Directory

from .context import context_of
from .ics import calendar_answer
from .params import time_range
from .resources import no_resource

routes = web.RouteTableDef()

# The suffixes clients put after the address (Outlook .vfb, Evolution and others .ifb).
SUFFIXES = (".vfb", ".ifb")


def resource_name(path_part: str) -> str:
    """The address (or user name) a path names, without a free/busy suffix."""
    for suffix in SUFFIXES:
        if path_part.lower().endswith(suffix):
            return path_part[: -len(suffix)]
    return path_part


@routes.get("/freebusy/{address}")
async def freebusy(request: web.Request) -> web.Response:
    context = context_of(request)
    now = context.now()
    span = time_range(request.query, now)
    name = resource_name(request.match_info["address"])
    text = _quickly(context.quick, name, span, now) if context.quick else None
    if text is None:
        text = await context.read(_freebusy, name, span, now)
    return calendar_answer(text)


def _quickly(quick: QuickOwners, name: str, span: TimeRange, now: dt.datetime) -> str | None:
    """The answer from the cached timeline, the owner read on the loop (SQLite); None when
    the session path must answer (the calendar changed, the file was busy, or the name is
    no resource's: it may be a pool's)."""
    try:
        return availability.quick_freebusy_text(quick, name, span, now)
    except LookupError:
        return None


def _freebusy(session: Session, directory: Directory, name: str, span: TimeRange,
              now: dt.datetime) -> str:
    # Not through the Directory: free/busy's own one-query lookup (store.calendar_owners).
    owner = availability.published_owner(session, name)
    if owner is not None:
        return availability.freebusy_text(session, owner, span, now)
    pool = availability.published_pool(session, name)
    if pool is None:
        raise no_resource(name)
    return availability.pool_freebusy_text(session, pool, span, now)
