"""One worker of ``mr-engine serve``: its front ends (``frontends.py``), the relay, the upkeep.

The parts every front end shares are the worker's: the store, the settings, the clock, the
relay (which a front end wakes when it has queued mail), the maintenance pass
(``maintenance.py``: series horizons, dedupe claims) and the session slots. Start-up order:
store, relay and maintenance, then each front end on its sockets, then the ``ready`` log
line. On SIGTERM or SIGINT every front end stops accepting first, work in flight is
finished and answered (up to SHUTDOWN_GRACE), the front ends end what is left (idle LMTP
sessions are told 421), and the relay and maintenance stop.
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
from .frontends import FRONT_ENDS, Bound, Serving, bind_all, close_all
from .maintenance import Maintenance
from .relay import Relay

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 60.0  # seconds to wait for deliveries in flight


class Server:
    def __init__(self, settings: Settings, db: Database | None = None,
                 clock: Callable[[], dt.datetime] = utcnow,
                 given: Bound | None = None,
                 slots: listeners.SessionSlots | None = None) -> None:
        """``given``: sockets already listening, by front end (a worker's, see
        ``workers.py``); without them the server binds every front end's addresses itself
        and removes its unix sockets at stop."""
        self.settings = settings
        self.db = db or open_database(settings.database_url, pool_size=8)
        self.clock = clock
        self.slots = slots or listeners.SessionSlots(settings.max_sessions)
        self.relay = Relay(self.db, settings, clock)
        self.maintenance = Maintenance(self.db, settings, clock, on_queued=self.relay.wake)
        self.fronts: dict[str, Serving] = {}
        self._background: list[asyncio.Task] = []
        self._background_stop = asyncio.Event()
        self.addresses: list[str] = []  # every front end's, LMTP's first
        self.listening: dict[str, list[str]] = {}  # by front end name
        self._given = given
        self._own: Bound = {}

    async def start(self) -> None:
        self._background = [asyncio.create_task(self.relay.run(self._background_stop)),
                            asyncio.create_task(self.maintenance.run(self._background_stop))]
        try:
            if self._given is None:
                self._own = bind_all(self.settings)
            await self._start_fronts(self._given or self._own)
        except OSError:
            await self.stop()
            raise
        log.info("mr-engine ready: %s", self._listening(self._given or self._own))

    async def _start_fronts(self, bound: Bound) -> None:
        for front in FRONT_ENDS:
            if front.name in bound:
                serving = front.serving_class()
                self.fronts[front.name] = serving(self, bound[front.name].sockets)
                await self.fronts[front.name].start()

    def _listening(self, bound: Bound) -> str:
        """``LMTP on 127.0.0.1:2003``, one part per front end; fills ``addresses``."""
        parts = []
        for front in FRONT_ENDS:
            if front.name in bound:
                addresses = bound[front.name].addresses()
                self.addresses.extend(addresses)
                self.listening[front.name] = addresses
                parts.append(f"{front.label} on {', '.join(addresses)}")
        return "; ".join(parts)

    async def stop(self, why: str = "") -> None:
        for front in self.fronts.values():
            front.close()
        if why:  # said once closed: whoever reads it finds new clients refused
            log.info("%s, shutting down", why)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE
        while self._busy() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for front in self.fronts.values():
            await front.finish()
        close_all(self._own)
        self._background_stop.set()
        await asyncio.gather(*self._background)
        self.db.dispose()
        log.info("mr-engine stopped")

    def _busy(self) -> bool:
        return any(front.busy() for front in self.fronts.values())

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        await self.stop("signal received")
