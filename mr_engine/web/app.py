"""The HTTP application: the route modules it is made of, and its middleware.

Each module in ROUTE_MODULES is one kind of page (free/busy, feeds, the pages for people,
health and metrics) and exposes ``routes``, an ``aiohttp.web.RouteTableDef``. A new kind of
page is its module and one line here.
"""

from __future__ import annotations

import importlib

from aiohttp import web

from .context import CONTEXT, WebContext
from .errors import answer_failures

ROUTE_MODULES: tuple[str, ...] = (
    "mr_engine.web.health",
    "mr_engine.web.pages",
    "mr_engine.web.freebusy",
    "mr_engine.web.feeds",
    "mr_engine.web.approvals",
)


def build_app(context: WebContext) -> web.Application:
    app = web.Application(middlewares=[answer_failures])
    app[CONTEXT] = context
    for name in ROUTE_MODULES:
        app.add_routes(importlib.import_module(name).routes)
    return app
