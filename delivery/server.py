"""``mr-engine serve``: the LMTP listeners, the group committer, the relay and the upkeep.

Start-up order: store, committer, relay and maintenance (``maintenance.py``: series
horizons, dedupe claims), listeners, then the ``ready`` log line. On SIGTERM
or SIGINT the listeners close first, messages being received or delivered are finished and
answered, the remaining idle sessions are told 421, and the committer, relay and maintenance stop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
from typing import Callable

from mr_engine.clock import utcnow
from mr_engine.config import Settings
from mr_engine.store.db import Database, open_database

from . import listeners
from .committer import Committer
from .lmtp import DeliveryHandler, LMTPProtocol
from .maintenance import Maintenance
from .relay import Relay

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 60.0  # seconds to wait for deliveries in flight



class Server:
    def __init__(self, settings: Settings, db: Database | None = None,
                 clock: Callable[[], dt.datetime] = utcnow,
                 given: listeners.Listeners | None = None,
                 slots: listeners.SessionSlots | None = None) -> None:
        """``given``: sockets already listening (a worker's, see ``workers.py``); without
        them the server binds ``lmtp_listen`` itself and removes its unix sockets at stop."""
        self.settings = settings
        self.db = db or open_database(settings.database_url, pool_size=8)
        self.relay = Relay(self.db, settings, clock)
        self.committer = Committer(self.db, settings, clock, on_queued=self.relay.wake)
        self.maintenance = Maintenance(self.db, settings, clock, on_queued=self.relay.wake)
        self.handler = DeliveryHandler(self.db, settings, self.committer,
                                       slots or listeners.SessionSlots(settings.max_sessions))
        self._listeners: list[listeners.Acceptor] = []
        self._background: list[asyncio.Task] = []
        self._background_stop = asyncio.Event()
        self.addresses: list[str] = []
        self._given = given
        self._own = listeners.Listeners()

    def _protocol(self) -> LMTPProtocol:
        return LMTPProtocol(self.handler, hostname=self.settings.hostname,
                            ident="mr-engine LMTP", decode_data=False, enable_SMTPUTF8=True,
                            data_size_limit=self.settings.max_message_size,
                            timeout=self.settings.session_timeout)

    async def start(self) -> None:
        self.committer.start()
        self._background = [asyncio.create_task(self.relay.run(self._background_stop)),
                            asyncio.create_task(self.maintenance.run(self._background_stop))]
        try:
            if self._given is None:
                self._own = listeners.bind(self.settings.lmtp_listen)
            sockets = (self._given or self._own).sockets
            for sock in sockets:
                self._listeners.append(
                    listeners.Acceptor(sock, self._protocol, self.handler.slots))
        except OSError:
            await self.stop()
            raise
        self.addresses = (self._given or self._own).addresses()
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
        self._own.close()
        await loop.run_in_executor(None, self.committer.stop)
        self._background_stop.set()
        await asyncio.gather(*self._background)
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
