"""A process that has imported the engine's console scripts once and forks one child a command.

The tests run the commands (``kopano-cli``, ``mr-engine``, ...) hundreds of times, and each
fresh interpreter spends about a second importing SQLAlchemy, icalendar and the engine
before the command's own 30 ms. Here that import is done once: every command is still its
own process, with its own stdin, stdout, stderr, environment, working directory, umask and
exit status, and it exits the way the console script does (``sys.exit(main())``, then the
interpreter's shutdown: threads joined, ``atexit``, streams flushed).

``python -m mr_engine.testing.zygote SOCKET``, started by ``mr_engine.testing.commands``
with only the variables read at import time (see ``commands.IMPORT_TIME``), so a child is
what a fresh process started with them would be. A request is one SOCK_SEQPACKET message,
JSON (script, argv, env, cwd, umask) with the child's three descriptors attached; the answer
is two messages, the child's pid and then its exit status (as ``subprocess`` gives it:
negative for a signal). The zygote ends when its stdin (a pipe from the test process) does.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import json
import os
import selectors
import socket
import sys
import threading
from importlib.metadata import entry_points
from typing import Callable

ENTRY_PACKAGE = "mr_engine."
MAX_REQUEST = 1 << 20


def scripts() -> dict[str, str]:
    """The engine's console scripts: name -> ``module:function``."""
    return {ep.name: ep.value for ep in entry_points(group="console_scripts")
            if ep.value.startswith(ENTRY_PACKAGE)}


def _entry(value: str) -> Callable[[], object]:
    module, _, name = value.partition(":")
    return getattr(importlib.import_module(module), name)


class Zygote:
    def __init__(self, path: str) -> None:
        self.entries = {name: _entry(value) for name, value in scripts().items()}
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path + ".new")
        self.listener.listen(64)
        os.rename(path + ".new", path)  # the path appears once it is listened on
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, self._accept)
        self.selector.register(0, selectors.EVENT_READ, self._stdin)
        self.conns: set[socket.socket] = set()  # answered once their child has ended
        self.running = True

    def serve(self) -> None:
        while self.running:
            for key, _ in self.selector.select():
                key.data(key.fileobj)

    def _stdin(self, fd: int) -> None:
        if not os.read(fd, 4096):  # the test process has ended
            self.running = False

    def _accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        self.conns.add(conn)
        message, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 3)
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            self._become(request, fds)  # does not return: the child exits from there
        for fd in fds:
            os.close(fd)
        conn.send(json.dumps({"pid": pid}).encode())
        pidfd = os.pidfd_open(pid)
        self.selector.register(pidfd, selectors.EVENT_READ, self._ended(conn, pid))

    def _ended(self, conn: socket.socket, pid: int) -> Callable[[int], None]:
        def answer(pidfd: int) -> None:
            self.selector.unregister(pidfd)
            os.close(pidfd)
            _, status = os.waitpid(pid, 0)
            conn.send(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode())
            conn.close()
            self.conns.discard(conn)
        return answer

    def _become(self, request: dict, fds: list[int]) -> None:
        """In the child: the command's descriptors and surroundings, then its script."""
        for key in list(self.selector.get_map().values()):
            if isinstance(key.fileobj, int) and key.fileobj != 0:
                os.close(key.fileobj)  # the other commands' pidfds
        self.selector.close()
        self.listener.close()
        for conn in self.conns:
            conn.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        coerced = os.environ.get("LC_CTYPE")  # PEP 538 sets it at startup, for children too
        os.environ.clear()
        os.environ.update(request["env"])
        if coerced is not None and "LC_CTYPE" not in request["env"]:
            os.environ["LC_CTYPE"] = coerced
        sys.argv = list(request["argv"])
        os._exit(_script_status(self.entries[request["script"]]))


def _script_status(entry: Callable[[], object]) -> int:
    """Run a console script's function as its wrapper does (``sys.exit(main())``), then end as
    the interpreter does: non-daemon threads joined, ``atexit``, what is unreachable collected
    (the command's database connections closed), the streams flushed. Not the module
    teardown: at 0.4 s for the zygote's heap, it is most of a fresh command's exit."""
    try:
        code = entry()
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    status = _exit_status(code)
    # What Py_FinalizeEx calls first: threading's own exit hooks (concurrent.futures stops
    # its workers there, event_scripts' runner among them), then the join of the others.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    gc.collect()
    return status if _flushed() else 120  # as Py_FinalizeEx when a stream cannot be flushed


def _exit_status(code: object) -> int:
    """SystemExit's code as the interpreter turns it into a status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _flushed() -> bool:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return False
    return True


def main() -> None:
    # As for the console script itself: its folder first on the path, not the start's cwd.
    sys.path[0] = os.path.dirname(sys.executable)
    zygote = Zygote(sys.argv[1])
    gc.freeze()  # what is imported stays out of the children's collections (and pages)
    zygote.serve()


if __name__ == "__main__":
    main()
