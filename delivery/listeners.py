"""The LMTP listening sockets, and the session count that ``max_sessions`` bounds.

Both are made before any worker process starts (see ``workers.py``), so that every worker
accepts on the same sockets and counts its sessions against one limit. The supervisor
imports this module, so it imports no asyncio (``acceptor.py`` is the workers' side).

A ``unix:`` socket gets ``lmtp_socket_mode`` (0660) and ``lmtp_socket_user`` /
``lmtp_socket_group``, as Dovecot's ``unix_listener``, so that Postfix can be let in by
group. It is bound under umask 0177, so it is its owner's alone until it has them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import stat
from dataclasses import dataclass, field

from mr_engine.config import Settings, group_id, user_id

BACKLOG = 128


@dataclass
class Listeners:
    sockets: list[socket.socket] = field(default_factory=list)
    unix_paths: list[str] = field(default_factory=list)  # ours to remove when we stop

    def addresses(self) -> list[str]:
        """What is being listened on, with the port the kernel chose for ``:0``."""
        result = []
        for sock in self.sockets:
            name = sock.getsockname()
            result.append(f"unix:{name}" if sock.family == socket.AF_UNIX
                          else f"{name[0]}:{name[1]}")
        return result

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        for path in self.unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)


class ListenError(OSError):
    """An address could not be listened on (in use, not ours, no such interface)."""


@dataclass(frozen=True)
class SocketAccess:
    """Who may connect to the ``unix:`` sockets; -1 keeps the process's own user or group."""

    mode: int = 0o660
    uid: int = -1
    gid: int = -1

    @classmethod
    def of(cls, settings: Settings) -> "SocketAccess":
        uid, gid = user_id(settings.lmtp_socket_user), group_id(settings.lmtp_socket_group)
        return cls(settings.lmtp_socket_mode, -1 if uid is None else uid,
                   -1 if gid is None else gid)


def bind(addresses: tuple[str, ...], access: SocketAccess = SocketAccess()) -> Listeners:
    """Listen on each ``host:port`` or ``unix:/path``; a failure closes what was opened."""
    listeners = Listeners()
    try:
        for address in addresses:
            if address.startswith("unix:"):
                _listen_unix(listeners, address[5:], access)
            else:
                listeners.sockets.extend(_bind_tcp(address))
    except OSError as exc:
        listeners.close()
        raise ListenError(exc.errno, f"{address}: {exc.strerror or exc}") from exc
    return listeners


def _listen_unix(listeners: Listeners, path: str, access: SocketAccess) -> None:
    listeners.sockets.append(_bind_unix(path))
    listeners.unix_paths.append(path)  # from here on, a failure removes it again
    if access.uid != -1 or access.gid != -1:
        os.chown(path, access.uid, access.gid, follow_symlinks=False)
    os.chmod(path, access.mode)  # last: until now it is its owner's alone (0600)
    listeners.sockets[-1].listen(BACKLOG)  # only now can a client connect


def _bind_unix(path: str) -> socket.socket:
    if os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
        os.unlink(path)  # a stale socket from an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # bind creates the file with 0777 less the umask: 0600 under 0177, not world-writable
    # (connecting needs write access) before chmod. The umask is the process's, but only
    # ever narrower for this moment, and the store's files get exact modes anyway.
    previous = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(previous)
    return sock


def _bind_tcp(address: str) -> list[socket.socket]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or None
    sockets: list[socket.socket] = []
    try:
        # A name may stand for several addresses (localhost: 127.0.0.1 and ::1).
        for family, kind, proto, _, sockaddr in socket.getaddrinfo(
                host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
            sock.listen(BACKLOG)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class SessionSlots:
    """Open LMTP sessions per worker process, in memory shared by all of them.

    Each worker writes only its own slot, so no lock is needed; the sum may be a moment
    stale, which can let a few sessions over the limit at the same instant, never more
    than one per worker. A worker that dies has its slot cleared by the supervisor.
    """

    def __init__(self, limit: int, workers: int = 1) -> None:
        self.limit = limit
        self._counts = multiprocessing.RawArray("i", workers)
        self.index = 0

    def for_worker(self, index: int) -> "SessionSlots":
        self.index = index
        return self

    def acquire(self) -> bool:
        if sum(self._counts) >= self.limit:
            return False
        self._counts[self.index] += 1
        return True

    def release(self) -> None:
        self._counts[self.index] -= 1

    def clear(self, index: int) -> None:
        self._counts[index] = 0

    def least_busy(self) -> bool:
        """No other worker has fewer sessions than this one."""
        return self._counts[self.index] <= min(self._counts)
