"""``mr-engine serve``: the LMTP listeners, the group committer and the relay, run together.

Start-up order: store, committer, relay, listeners, then the ``ready`` log line. On SIGTERM
or SIGINT the listeners close first, messages being received or delivered are finished and
answered, the remaining idle sessions are told 421, and the committer and relay stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import stat
from typing import Callable

from mr_engine.clock import utcnow
from mr_engine.config import Settings
from mr_engine.db import Database, open_database

from .committer import Committer
from .lmtp import DeliveryHandler, LMTPProtocol
from .relay import Relay

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 60.0  # seconds to wait for deliveries in flight



class Server:
    def __init__(self, settings: Settings, db: Database | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.settings = settings
        self.db = db or open_database(settings.database_url, pool_size=8)
        self.relay = Relay(self.db, settings, clock)
        self.committer = Committer(self.db, settings, clock, on_queued=self.relay.wake)
        self.handler = DeliveryHandler(self.db, settings, self.committer)
        self._listeners: list[asyncio.Server] = []
        self._relay_task: asyncio.Task | None = None
        self._relay_stop = asyncio.Event()
        self.addresses: list[str] = []
        self._unix_paths: list[str] = []

    def _protocol(self) -> LMTPProtocol:
        return LMTPProtocol(self.handler, hostname=self.settings.hostname,
                            ident="mr-engine LMTP", decode_data=False, enable_SMTPUTF8=True,
                            data_size_limit=self.settings.max_message_size,
                            timeout=self.settings.session_timeout)

    async def _listen(self, address: str) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        if address.startswith("unix:"):
            path = address[5:]
            if os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)  # a stale socket from an earlier run
            server = await loop.create_unix_server(self._protocol, path=path)
            self._unix_paths.append(path)
            self.addresses.append(address)
            return server
        host, _, port = address.rpartition(":")
        server = await loop.create_server(self._protocol, host=host.strip("[]"), port=int(port))
        for sock in server.sockets:
            name = sock.getsockname()
            self.addresses.append(f"{name[0]}:{name[1]}")
        return server

    async def start(self) -> None:
        self.committer.start()
        self._relay_task = asyncio.create_task(self.relay.run(self._relay_stop))
        try:
            for address in self.settings.lmtp_listen:
                self._listeners.append(await self._listen(address))
        except OSError:
            await self.stop()
            raise
        log.info("mr-engine ready: LMTP on %s", ", ".join(self.addresses))

    async def stop(self) -> None:
        for listener in self._listeners:
            listener.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE
        while self._busy() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.handler.connections):
            conn.close("421 4.3.2 Service shutting down")
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        await loop.run_in_executor(None, self.committer.stop)
        self._relay_stop.set()
        if self._relay_task is not None:
            await self._relay_task
        self.db.dispose()
        log.info("mr-engine stopped")

    def _busy(self) -> bool:
        """A message is being received or delivered: shutdown waits for it to be answered."""
        return bool(self.handler.in_flight
                    or any(conn.receiving for conn in self.handler.connections))

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        log.info("signal received, shutting down")
        await self.stop()
