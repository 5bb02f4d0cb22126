"""The LMTP front end of a worker: the protocol on its sockets, the handler, the committer.

Deliveries are committed by this front end's group committer (``committer.py``); what they
queue wakes the worker's relay. Stopping waits for every message being received or
delivered to be answered, then tells idle sessions 421 and ends the committer.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

from .acceptor import Acceptor
from .committer import Committer
from .lmtp import DeliveryHandler, LMTPProtocol

if TYPE_CHECKING:
    from .server import Server


class LmtpFrontEnd:
    def __init__(self, server: Server, sockets: list[socket.socket]) -> None:
        settings = server.settings
        self.settings = settings
        self.committer = Committer(server.db, settings, server.clock,
                                   on_queued=server.relay.wake)
        self.committer.start()
        self.handler = DeliveryHandler(server.db, settings, self.committer, server.slots)
        self.acceptors = [Acceptor(sock, self._protocol, server.slots)
                          for sock in sockets]

    async def start(self) -> None:
        """The acceptors accept from their construction on."""

    def _protocol(self) -> LMTPProtocol:
        return LMTPProtocol(self.handler, hostname=self.settings.hostname,
                            ident="mr-engine LMTP", decode_data=False, enable_SMTPUTF8=True,
                            data_size_limit=self.settings.max_message_size,
                            timeout=self.settings.session_timeout)

    def busy(self) -> bool:
        """A message is being received or delivered: stopping waits for its answer."""
        return bool(self.handler.in_flight
                    or any(conn.receiving for conn in self.handler.connections))

    def close(self) -> None:
        for acceptor in self.acceptors:
            acceptor.close()

    async def finish(self) -> None:
        for conn in list(self.handler.connections):
            conn.close("421 4.3.2 Service shutting down")
        await asyncio.get_running_loop().run_in_executor(None, self.committer.stop)
