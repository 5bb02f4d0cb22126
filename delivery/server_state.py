"""The running server's state file: its process id and listeners, for ``mr-engine status``.

``serve`` writes it once its listeners are bound and removes it when it ends; ``status``
reads it and believes it only while that process is alive (a server killed with SIGKILL
leaves the file behind) and serves the same store. It is in ``home``, and the supervisor
writes nothing else: it imports none of the engine (see ``workers``), so no SQLAlchemy to
find a SQLite store's directory with. The supervisor keeps the process id of ``serve``
(it replaces it by ``exec``), so the file stays true for a server with worker processes.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from mr_engine.config import Settings

log = logging.getLogger(__name__)

STATE_FILE = "mr-engine-server.json"


@dataclass(frozen=True)
class ServerState:
    pid: int
    database_url: str  # what it serves, as the settings say
    listeners: Mapping[str, Sequence[str]]  # front end name -> addresses ("lmtp": [...])


def state_path(settings: Settings) -> Path:
    return Path(settings.home) / STATE_FILE


def write(settings: Settings, listeners: Mapping[str, Sequence[str]]) -> None:
    """Written whole under another name, then renamed: a reader never sees half of it. A
    server that cannot write it serves all the same (``status`` then says none runs)."""
    path = state_path(settings)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # home of a PostgreSQL store, say
        partial.write_text(json.dumps({
            "pid": os.getpid(), "database_url": settings.database_url,
            "listeners": {k: list(v) for k, v in listeners.items()}}))
        partial.replace(path)
    except OSError as exc:
        log.warning("cannot write the server state file %s: %s", path, exc.strerror)


def remove(settings: Settings) -> None:
    """Remove the file if it is this process's (a second server may have written its own)."""
    path = state_path(settings)
    state = _load(path)
    if state is not None and state.pid == os.getpid():
        path.unlink(missing_ok=True)


def running(settings: Settings) -> ServerState | None:
    """The state of a live server of this store, else None."""
    state = _load(state_path(settings))
    if state is None or state.database_url != settings.database_url:
        return None
    return state if _alive(state.pid) else None


def _load(path: Path) -> ServerState | None:
    try:
        data = json.loads(path.read_text())
        return ServerState(int(data["pid"]), str(data["database_url"]),
                           {str(k): [str(a) for a in v] for k, v in data["listeners"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's (the service's, seen by an administrator)
    return _is_engine(pid)


def _is_engine(pid: int) -> bool:
    """Guards against a reused process id: the command line names the engine."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            command = fh.read()
    except OSError:
        return True  # no /proc to ask: the pid alone
    return b"mr-engine" in command or b"mr_engine" in command
