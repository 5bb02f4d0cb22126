"""``run``: the engine's console scripts as the tests run them, each in a process of its own,
forked from a zygote (``zygote.py``) that has imported them once; anything else, or every
command when ``MR_ENGINE_TEST_ZYGOTE=0``, through ``subprocess.run`` itself.

The result is the same either way: a ``subprocess.CompletedProcess`` with the exit status,
stdout and stderr (text decoded and newlines translated as ``subprocess`` does), and
``TimeoutExpired`` or ``CalledProcessError`` as it raises them. What a fresh interpreter
reads from the environment at import time (the locale, ``TZ``, ``PYTHON*``,
``PROMETHEUS_MULTIPROC_DIR``) is fixed at a zygote's start, so there is one zygote for each
set of those values a test asks for.
"""

from __future__ import annotations

import atexit
import json
import locale
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Sequence

from .paths import BIN
from .zygote import MAX_REQUEST, scripts

SWITCH = "MR_ENGINE_TEST_ZYGOTE"
IMPORT_TIME = frozenset({"LANG", "LC_ALL", "LC_CTYPE", "TZ", "PROMETHEUS_MULTIPROC_DIR"})
START_TIMEOUT = 120.0

_SCRIPTS = frozenset(scripts())
_zygotes: dict[tuple[tuple[str, str], ...], "_Zygote"] = {}
_starting = threading.Lock()


def run(args: Sequence[str | os.PathLike], *, input: str | bytes | None = None,
        capture_output: bool = False, text: bool = False, env: dict[str, str] | None = None,
        cwd: str | os.PathLike | None = None, timeout: float | None = None,
        check: bool = False) -> subprocess.CompletedProcess:
    """As ``subprocess.run`` with these arguments."""
    argv = [os.fspath(a) for a in args]
    script = os.path.basename(argv[0])
    if (os.environ.get(SWITCH) == "0" or os.path.dirname(argv[0]) != str(BIN)
            or script not in _SCRIPTS or argv[1:2] == ["serve"]  # serve: its own processes
            or (cwd is not None and not os.path.isdir(cwd))):  # subprocess's own error
        return subprocess.run(argv, input=input, capture_output=capture_output, text=text,
                              env=env, cwd=cwd, timeout=timeout, check=check)
    environ = dict(os.environ if env is None else env)
    request = {"script": script, "argv": argv, "env": environ,
               "cwd": os.fspath(cwd) if cwd is not None else os.getcwd(), "umask": _umask()}
    data = input.encode(_encoding()) if isinstance(input, str) else input
    out, err, code = _zygote(environ).run(request, data, capture_output, timeout, argv)
    done = subprocess.CompletedProcess(argv, code, _text(out, text), _text(err, text))
    if check:
        done.check_returncode()
    return done


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _encoding() -> str:
    return locale.getpreferredencoding(False)  # what subprocess uses for text=True


def _text(data: bytes | None, text: bool) -> str | bytes | None:
    if data is None or not text:
        return data
    return data.decode(_encoding()).replace("\r\n", "\n").replace("\r", "\n")


def _zygote(environ: dict[str, str]) -> "_Zygote":
    key = tuple(sorted((k, v) for k, v in environ.items()
                       if k in IMPORT_TIME or k.startswith("PYTHON")))
    with _starting:
        if key not in _zygotes or not _zygotes[key].alive():
            _zygotes[key] = _Zygote(dict(key))
        return _zygotes[key]


class _Zygote:
    def __init__(self, environ: dict[str, str]) -> None:
        self.folder = tempfile.mkdtemp(prefix="mr-engine-zygote-")
        self.path = os.path.join(self.folder, "socket")
        self.proc = subprocess.Popen([sys.executable, "-m", "mr_engine.testing.zygote", self.path],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     env=environ, cwd=self.folder)
        atexit.register(self.stop)
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(self.path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the command zygote did not start ({self.proc.returncode})")
            time.sleep(0.02)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the zygote ends at the end of its stdin
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(self, request: dict[str, Any], data: bytes | None, capture: bool,
            timeout: float | None, argv: list[str]) -> tuple[bytes | None, bytes | None, int]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
            conn.connect(self.path)
            return _Exchange(conn, data, capture).run(request, timeout, argv)


class _Exchange:
    """One command's pipes, as ``subprocess.Popen.communicate`` drives them."""

    def __init__(self, conn: socket.socket, data: bytes | None, capture: bool) -> None:
        self.conn = conn
        self.data = data or b""
        self.theirs: list[int] = [0, 1, 2]  # the child's: ours inherited unless piped
        self.outputs: dict[int, bytearray] = {}  # our ends of its stdout and stderr
        self.writer: int | None = None
        if data is not None:
            self.theirs[0], self.writer = os.pipe()
        if capture:
            for target in (1, 2):
                mine, self.theirs[target] = os.pipe()
                self.outputs[mine] = bytearray()
        self.open: set[Any] = {conn, *self.outputs} | ({self.writer} - {None})
        self.answers: dict[str, int] = {}

    def run(self, request: dict[str, Any], timeout: float | None,
            argv: list[str]) -> tuple[bytes | None, bytes | None, int]:
        socket.send_fds(self.conn, [json.dumps(request).encode()], self.theirs)
        for fd in self.theirs:
            if fd > 2:
                os.close(fd)
        try:
            self._communicate(None if timeout is None else time.monotonic() + timeout)
        except subprocess.TimeoutExpired:
            if "pid" in self.answers:
                os.kill(self.answers["pid"], signal.SIGKILL)
            self._communicate(time.monotonic() + 30)  # its status, what the pipes still hold
            raise subprocess.TimeoutExpired(argv, timeout or 0, *self._captured()) from None
        return *self._captured(), self.answers["returncode"]

    def _captured(self) -> tuple[bytes | None, bytes | None]:
        if not self.outputs:
            return None, None
        out, err = self.outputs.values()
        return bytes(out), bytes(err)

    def _communicate(self, deadline: float | None) -> None:
        with selectors.DefaultSelector() as selector:
            for fileobj in self.open:
                events = selectors.EVENT_WRITE if fileobj == self.writer else selectors.EVENT_READ
                selector.register(fileobj, events)
            while self.open:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired("", 0)
                for key, _ in selector.select(left):
                    if self._ready(key.fileobj):
                        selector.unregister(key.fileobj)
                        self.open.discard(key.fileobj)

    def _ready(self, fileobj: Any) -> bool:
        """Handle what ``fileobj`` has for us; True once it is done with."""
        if fileobj is self.conn:
            answer = self.conn.recv(MAX_REQUEST)
            # No answer: the zygote is gone, and the command with it, as if killed.
            self.answers.update(json.loads(answer) if answer else {"returncode": -signal.SIGKILL})
            return "returncode" in self.answers
        if fileobj == self.writer:
            self.data = self.data[_write(fileobj, self.data):]
            return not self.data and _closed(fileobj)
        chunk = os.read(fileobj, 65536)
        self.outputs[fileobj] += chunk
        return not chunk and _closed(fileobj)


def _closed(fd: int) -> bool:
    os.close(fd)
    return True


def _write(fd: int, data: bytes) -> int:
    """As much of ``data`` as the pipe takes now; a reader gone takes it all (as communicate)."""
    os.set_blocking(fd, False)
    try:
        return os.write(fd, data[:65536]) if data else 0
    except BlockingIOError:
        return 0
    except BrokenPipeError:
        return len(data)
