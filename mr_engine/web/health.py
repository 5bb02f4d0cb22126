"""``GET /healthz`` and ``GET /metrics``: is this worker able to serve, and what it has done.

``/healthz`` answers 200 with ``{"status": "ok", ...}`` (database backend, schema revision,
the answering worker's process id) when the database answers ``SELECT 1`` within
HEALTH_TIMEOUT, else 503 with ``{"status": "unavailable", "reason": ...}``, the reason one
line (the driver's first, never a traceback). A load balancer or systemd watchdog polls it.

``/metrics`` is the Prometheus exposition of ``mr_engine.metrics`` (every worker's, added
up), plus the outbound queue's depth by status, counted in the database at scrape time so
that it is one value whichever worker answers. Without the database the other metrics are
still served: they matter most when it is down.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Callable, TypeVar

from aiohttp import web
from prometheus_client.registry import Collector
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from mr_engine import metrics
from mr_engine.store.db import probe
from mr_engine.store.directories import Directory
from mr_engine.store.outbox import count_by_status

from .context import WebContext, context_of

log = logging.getLogger(__name__)

T = TypeVar("T")

HEALTH_TIMEOUT = 2.0  # seconds the database has to answer
MAX_REASON = 200  # characters of the driver's message in a 503

routes = web.RouteTableDef()


class Unavailable(Exception):
    """The database did not answer in time or failed; ``reason`` is one line."""


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    context = context_of(request)
    facts = {"database": context.db.engine.dialect.name, "pid": os.getpid()}
    try:
        revision = await _within_timeout(context, _probe)
    except Unavailable as down:
        return web.json_response({"status": "unavailable", "reason": str(down), **facts},
                                 status=503)
    return web.json_response({"status": "ok", "schema_revision": revision, **facts})


@routes.get("/metrics")
async def metrics_page(request: web.Request) -> web.Response:
    context = context_of(request)
    extra = await _queue_depth(context)
    body, content_type = await asyncio.get_running_loop().run_in_executor(
        None, metrics.exposition, request.headers.get("Accept"), *extra)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _queue_depth(context: WebContext) -> list[Collector]:
    try:
        counts = await _within_timeout(context, _counts)
    except Unavailable as down:
        log.warning("metrics without the outbound queue depth: %s", down)
        return []
    return [metrics.queue_depth(counts)]


def _probe(session: Session, _directory: Directory) -> str | None:
    return probe(session)


def _counts(session: Session, _directory: Directory) -> dict[str, int]:
    return count_by_status(session)


async def _within_timeout(context: WebContext, work: Callable[[Session, Directory], T]) -> T:
    """``context.read(work)``, or Unavailable with the reason. (A thread stuck in the
    driver stays stuck, but the answer does not wait for it.)"""
    try:
        return await asyncio.wait_for(context.read(work), HEALTH_TIMEOUT)
    except asyncio.TimeoutError:
        raise Unavailable(f"the database did not answer within {HEALTH_TIMEOUT:g} s") from None
    except SQLAlchemyError as exc:
        raise Unavailable(f"database error: {_first_line(exc)}") from None


def _first_line(exc: SQLAlchemyError) -> str:
    """The driver's own message (without SQLAlchemy's statement and link), its first line."""
    text = str(exc.orig) if isinstance(exc, DBAPIError) and exc.orig else str(exc)
    line = (text.strip().splitlines() or [type(exc).__name__])[0]
    return "".join(ch if ch.isprintable() else " " for ch in line)[:MAX_REASON]
