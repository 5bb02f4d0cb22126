"""The HTTP front end of a worker (``delivery.frontends``): the application on its sockets.

Every worker serves the same application on the shared listening sockets (the kernel hands
each connection to one of them). Requests are read-only, so stopping waits for none: closing
stops accepting, and ``finish`` ends the connections left.
"""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web

from .app import build_app
from .context import WebContext, WorkerParts

# The access log is the administrator's (INFO, one line a request, aiohttp's own format).
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'


class HttpFrontEnd:
    def __init__(self, server: WorkerParts, sockets: list[socket.socket]) -> None:
        self.runner = web.AppRunner(build_app(WebContext.of(server)), handle_signals=False,
                                    access_log_format=ACCESS_LOG_FORMAT)
        self.sockets = sockets
        self.sites: list[web.SockSite] = []
        self._stopping: list[asyncio.Task] = []

    async def start(self) -> None:
        await self.runner.setup()
        for sock in self.sockets:
            site = web.SockSite(self.runner, sock)
            await site.start()
            self.sites.append(site)

    def busy(self) -> bool:
        return False  # read-only requests: nothing to finish before stopping

    def close(self) -> None:
        self._stopping = [asyncio.ensure_future(site.stop()) for site in self.sites]

    async def finish(self) -> None:
        await asyncio.gather(*self._stopping)
        await self.runner.cleanup()
