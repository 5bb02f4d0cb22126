"""The pages for people: the list of rooms and equipment with the finder, and the door display.

- ``GET /``: "Rooms and equipment", each resource free or busy with today's timeline, and
  the "find a free resource" form (``find_form``); submitted, it lists the resources free
  for the whole period (``services.finder``, booking's own conflict check).
- ``GET /rooms/<name>``: the door display of one resource (a tablet by the door), refreshing
  itself every 60 s with a ``<meta>`` refresh, so it needs no script. A resource with a
  calendar token shows it only with ``?token=``.

Both take ``?at=ISO8601`` to show another moment. Server-rendered with jinja2
(autoescaping on: summaries and names come from anyone's mail); the style is inline, the
pages load nothing else.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from typing import TYPE_CHECKING, Mapping
from urllib.parse import quote, urlencode

from aiohttp import web
from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.core import room_state
from mr_engine.core.timezones import format_span
from mr_engine.services import finder, room_pages
from mr_engine.services.room_pages import ResourcePage
from mr_engine.store.directories import Directory

from .context import context_of
from .find_form import LONGEST, form_of, submitted, wanted_of
from .params import moment
from .resources import find_resource, require_token

if TYPE_CHECKING:
    import jinja2

routes = web.RouteTableDef()

REFRESH_SECONDS = 60  # the door display's


def html(template: str, **values: object) -> web.Response:
    text = templates().get_template(template).render(**values)
    return web.Response(text=text, content_type="text/html", charset="utf-8")


def link(path: str, at_text: str) -> str:
    """``path`` at the same ``?at=`` as the page linking to it (none: now)."""
    return path + (f"?{urlencode({'at': at_text})}" if at_text else "")


def room_link(name: str, at_text: str) -> str:
    """The door page of ``name``."""
    return link(f"/rooms/{quote(name, safe='@')}", at_text)


@functools.cache
def templates() -> jinja2.Environment:
    """The pages' templates, made for the first page shown: jinja2 is imported then, not by
    every worker as it starts (some 2 MB of its memory, which mail delivery never uses)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mr_engine.web", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.globals.update(stamp=room_state.stamp, span=format_span, link=link,
                       room_link=room_link)
    return env


@routes.get("/")
async def overview(request: web.Request) -> web.Response:
    ctx = context_of(request)
    at = moment(request.query, ctx.now())
    zone = zoneinfo.ZoneInfo(ctx.settings.default_timezone)  # the form's times
    form = form_of(request.query, at, zone)
    wanted = wanted_of(form, zone) if submitted(request.query) else None
    pages, free = await ctx.read(_overview, ctx.settings, at, wanted)
    found = [page for page in pages if page.name in free]
    return html("overview.html", pages=pages, found=found, wanted=wanted, form=form, at=at,
                zone=zone, at_text=request.query.get("at", ""), kinds=finder.KINDS,
                longest=LONGEST)


def _overview(session: Session, directory: Directory, settings: Settings, at: dt.datetime,
              wanted: finder.Wanted | None) -> tuple[list[ResourcePage], set[str]]:
    """Every resource at ``at``, and the names of those free as ``wanted`` asks."""
    pages = [room_pages.listed_page(session, r, settings, at)
             for r in finder.resources(directory)]
    free = set() if wanted is None else \
        {r.name for r in finder.free_resources(session, directory, wanted)}
    return pages, free


@routes.get("/rooms/{name}")
async def door(request: web.Request) -> web.Response:
    ctx = context_of(request)
    at = moment(request.query, ctx.now())
    page = await ctx.read(_door, request.match_info["name"], request.query, ctx.settings, at)
    return html("door.html", page=page, at=at, at_text=request.query.get("at", ""),
                refresh=REFRESH_SECONDS)


def _door(session: Session, directory: Directory, name: str, query: Mapping[str, str],
          settings: Settings, at: dt.datetime) -> ResourcePage:
    resource = find_resource(directory, name)
    require_token(query, resource)
    return room_pages.page_of(session, resource, settings, at)
