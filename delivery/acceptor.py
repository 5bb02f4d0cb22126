"""A worker's accepting of LMTP connections on the listening sockets it shares with the
other workers, a session at a time and balanced by ``listeners.SessionSlots``.

Its own module, apart from ``listeners.py``: the supervisor imports that one, and would
otherwise import asyncio (6 MB of its 25) for the workers alone.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
from typing import Callable

from .listeners import SessionSlots

log = logging.getLogger(__name__)


class Acceptor:
    """Accepts connections on one listening socket shared by the worker processes.

    Every worker is woken when a client connects. asyncio's own accept loop would take a
    whole burst of connections in the first worker to wake, and LMTP sessions last: one
    worker would do all the work. Here a worker takes one connection at a time, and leaves
    it to the others while it has more sessions than one of them; if none has taken it a
    moment later (that worker is busy), it takes it after all.
    """

    DEFER = 0.005  # seconds to leave a connection to a less busy worker
    PAUSE = 0.1  # seconds without accepting when out of file descriptors

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol],
                 slots: SessionSlots) -> None:
        self.sock = sock
        self.factory = factory
        self.slots = slots
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        sock.setblocking(False)
        self._loop.add_reader(sock, self._ready)

    def _ready(self) -> None:
        if not self.slots.least_busy():
            self._pause(self.DEFER)
            return
        self._accept()

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up before we did
        except OSError as exc:  # EMFILE, ENFILE, ENOBUFS: let clients wait in the backlog
            log.error("cannot accept a connection: %s", exc)
            self._pause(self.PAUSE)
            return
        conn.setblocking(False)
        task = self._loop.create_task(self._connect(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self.factory, conn)
        except OSError:
            log.warning("connection lost while being set up", exc_info=True)
            conn.close()

    def _pause(self, seconds: float) -> None:
        self._loop.remove_reader(self.sock)
        self._timer = self._loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        self._timer = None
        self._loop.add_reader(self.sock, self._ready)
        # Still waiting after DEFER: the less busy worker is busy, take it after all.
        if select.select([self.sock], [], [], 0)[0]:
            self._accept()

    def close(self) -> None:
        """Stop accepting; sessions already open go on."""
        if self._timer is not None:
            self._timer.cancel()
        self._loop.remove_reader(self.sock)
        self.sock.close()
