"""Processes on this machine, for the tests and the benchmark alike: a free loopback port,
the children of a process, which process holds the far end of a loopback connection, the
command that starts ``mr-engine serve``, and waiting for a peer (Dovecot, Postfix) to come
up or to end."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    """The process ids of a live process's children."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(child) for child in fh.read().split()]
    except OSError:
        return []


def serving_pid(client: socket.socket, pids: list[int]) -> int | None:
    """Which of *pids* holds the accepted end of *client*'s TCP connection on loopback:
    the kernel's table of IPv4 sockets gives that end's inode, a process's fds name it."""
    inode = _accepted_inode(client.getsockname()[1], client.getpeername()[1])
    for pid in pids:
        with contextlib.suppress(OSError):
            fds = Path(f"/proc/{pid}/fd")
            if any(os.readlink(fd) == f"socket:[{inode}]" for fd in fds.iterdir()):
                return pid
    return None


def _accepted_inode(client_port: int, server_port: int) -> str | None:
    with open("/proc/net/tcp") as fh:
        for line in fh.readlines()[1:]:
            fields = line.split()
            local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
            if (local, remote) == (server_port, client_port):
                return fields[9]
    return None


def engine_command() -> list[str]:
    """``mr-engine serve``: the console script next to this interpreter, else the module."""
    script = Path(sys.executable).parent / "mr-engine"
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "mr_engine.cli.main", "serve"]


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen, log: Path, what: str,
               timeout: float) -> None:
    """Poll ``ready`` until it says yes; if ``proc`` ends or ``timeout`` seconds pass first,
    fail with the tail of its ``log``."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{what} did not start:\n{text[-2000:]}")
        time.sleep(0.05)


def reap(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Wait for ``proc``, told to end already; killed if it has not after ``timeout``."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class Peer:
    """A server process (Dovecot, Postfix) that its constructor starts and then waits for
    with ``_up``; ``stop``, or leaving the ``with`` block, ends it."""

    def _wait(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _up(self) -> None:
        """Wait until the peer serves; if it does not, end what was started and raise."""
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
