"""Processes on this machine, for the tests and the benchmark alike: a free loopback port,
the children of a process, and the command that starts ``mr-engine serve``."""

from __future__ import annotations

import socket
import sys
from pathlib import Path


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


def engine_command() -> list[str]:
    """``mr-engine serve``: the console script next to this interpreter, else the module."""
    script = Path(sys.executable).parent / "mr-engine"
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "mr_engine.cli.main", "serve"]
