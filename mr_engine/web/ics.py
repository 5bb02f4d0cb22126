"""iCalendar answers: the media type free/busy and feeds are served with.

``text/calendar`` (RFC 5545 §8.1) in UTF-8, and no caching by the way: a client asks
again for the current state, which the server answers from its own cache.
"""

from __future__ import annotations

from aiohttp import web


def calendar_answer(text: str) -> web.Response:
    return web.Response(body=text.encode("utf-8"), content_type="text/calendar",
                        charset="utf-8", headers={"Cache-Control": "no-cache"})
