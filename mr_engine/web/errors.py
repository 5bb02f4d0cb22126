"""Failures as short answers: a bad parameter 400, an unknown resource 404, the database or
the directory (LDAP) down 503, anything else 500; always one plain-text line, never a
traceback page.

Handlers raise ``BadRequest``, ``NotFound`` or ``Forbidden`` with the reason a person
should read; the middleware answers them and logs the rest with their traceback (for the
administrator's log, not the client).
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web
from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

from mr_engine.store.directories import DirectoryUnavailable

log = logging.getLogger(__name__)


class HttpProblem(Exception):
    status = 500

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRequest(HttpProblem):
    status = 400


class Forbidden(HttpProblem):
    status = 403


class NotFound(HttpProblem):
    status = 404


def plain(status: int, reason: str) -> web.Response:
    """One line of text: what went wrong, in words (control characters dropped)."""
    line = "".join(ch if ch.isprintable() else " " for ch in reason)
    return web.Response(status=status, text=line + "\n", content_type="text/plain",
                        charset="utf-8")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def answer_failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HttpProblem as problem:
        return plain(problem.status, problem.reason)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return plain(exc.status, exc.reason)
    except (DBAPIError, PoolTimeout) as exc:
        log.error("HTTP %s %s: database unavailable: %s", request.method, request.path,
                  str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return plain(503, "the database is unavailable, try again later")
    except DirectoryUnavailable as exc:
        log.error("HTTP %s %s: %s", request.method, request.path, exc)
        return plain(503, "the directory is unavailable, try again later")
    except Exception:
        log.exception("HTTP %s %s failed", request.method, request.path)
        return plain(500, "internal error (logged on the server)")
