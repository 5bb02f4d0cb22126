"""The front ends a worker serves: which exist, where each listens, and what serves it.

The supervisor binds every front end's addresses (its ``*_listen`` setting; an empty one
leaves it off) and hands the sockets to the workers by name; each worker then builds the
front end's serving class on them (``Server``). The table below is all that the supervisor
and the workers know of a front end, and the supervisor imports nothing behind it: a new
front end is its own module with a serving class and one line here.

A serving class is built as ``Serving(server, sockets)`` (``server``: the worker's shared
parts, see ``Server``), is started by ``await start()``, and answers ``busy()`` (work in flight that stopping waits for),
``close()`` (stop accepting) and ``await finish()`` (end what is left, once the work in
flight is done or the grace period is over).
"""

from __future__ import annotations

import importlib
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mr_engine.config import Settings

from . import listeners

if TYPE_CHECKING:
    from .server import Server


@dataclass(frozen=True)
class FrontEnd:
    name: str  # the key of its sockets, from the supervisor to the workers
    label: str  # in the "ready" log line
    listen: str  # the setting that lists its addresses
    serving: str  # "module:Class", imported by the workers only

    def addresses(self, settings: Settings) -> tuple[str, ...]:
        return tuple(getattr(settings, self.listen))

    def serving_class(self) -> type[Serving]:
        module, _, name = self.serving.partition(":")
        return getattr(importlib.import_module(module), name)


FRONT_ENDS = (
    FrontEnd("lmtp", "LMTP", "lmtp_listen", "mr_engine.delivery.lmtp_front:LmtpFrontEnd"),
    FrontEnd("http", "HTTP", "http_listen", "mr_engine.web.front:HttpFrontEnd"),
)

Bound = dict[str, listeners.Listeners]  # front end name -> its listening sockets


class Serving(Protocol):
    def __init__(self, server: Server, sockets: list[socket.socket]) -> None: ...

    async def start(self) -> None: ...

    def busy(self) -> bool: ...

    def close(self) -> None: ...

    async def finish(self) -> None: ...


def bind_all(settings: Settings) -> Bound:
    """Every front end's addresses bound; a failure closes what was opened."""
    bound: Bound = {}
    access = listeners.SocketAccess.of(settings)
    try:
        for front in FRONT_ENDS:
            if front.addresses(settings):
                bound[front.name] = listeners.bind(front.addresses(settings), access)
    except BaseException:
        close_all(bound)
        raise
    return bound


def close_all(bound: Bound) -> None:
    for sockets in bound.values():
        sockets.close()
