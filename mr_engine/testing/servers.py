"""The real LMTP server under test: ``mr-engine serve`` in the test process (RunningServer) or
as a child process (ServeProcess), both context managers, and the settings they start with."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import subprocess
import threading
import time

from mr_engine.config import Settings
from mr_engine.delivery.server import Server

from .paths import BIN
from .processes import children, engine_command


def make_settings(db_url: str, **changes) -> Settings:
    """Settings of a test server: any free port, a smarthost nothing listens on, no HTTP
    (``http_listen=("127.0.0.1:0",)`` turns it on; ``RunningServer.http_port`` finds it)."""
    base = Settings(database_url=db_url, lmtp_listen=("127.0.0.1:0",), hostname="mx.test",
                    smarthost="127.0.0.1:9", http_listen=())
    return base.replace(**changes)


def serve_env(db_url: str, **settings: str) -> dict[str, str]:
    """The environment of a ``mr-engine serve`` child: as make_settings, plus ``settings``."""
    env = {"MR_ENGINE_DATABASE_URL": db_url, "MR_ENGINE_LMTP_LISTEN": "127.0.0.1:0",
           "MR_ENGINE_SMARTHOST": "127.0.0.1:9", "MR_ENGINE_HTTP_LISTEN": "", "PATH": str(BIN)}
    env.update({f"MR_ENGINE_{k.upper()}": v for k, v in settings.items()})
    return env


class RunningServer:
    """``mr-engine serve`` in a background thread with its own event loop."""

    def __init__(self, settings: Settings, clock=None) -> None:
        kwargs = {"clock": clock} if clock else {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server: Server = self._call(_make(settings, kwargs))

    def _call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> "RunningServer":
        self._call(self.server.start())
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self.server.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @property
    def port(self) -> int:
        return int(self.server.addresses[0].rsplit(":", 1)[1])

    @property
    def http_port(self) -> int:
        return int(self.server.listening["http"][0].rsplit(":", 1)[1])


async def _make(settings: Settings, kwargs) -> Server:
    # Built on the thread of the loop it will run on, as serve builds it in its own loop.
    return Server(settings, **kwargs)


def server_at(db_url: str, now: dt.datetime, **changes) -> RunningServer:
    """A RunningServer whose clock stands still at ``now``."""
    return RunningServer(make_settings(db_url, **changes), clock=lambda: now)


def _port_of(ready: str, label: str) -> int:
    """The first 127.0.0.1 port of a front end in the "ready" line ("LMTP on ...; HTTP on ...")."""
    match = re.search(rf"{label} on [^;]*?127\.0\.0\.1:(\d+)", ready)
    if not match:
        raise AssertionError(f"no {label} address on 127.0.0.1 in {ready!r}")
    return int(match.group(1))


class ServeProcess:
    """``mr-engine serve`` as a child process, its log collected as it is written."""

    def __init__(self, env: dict[str, str], *args: str, wait: bool = True) -> None:
        """Started; with ``wait``, once it has logged that it is ready (its port is read)."""
        self.proc = subprocess.Popen([*engine_command(), *args], env=env,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if wait:
            try:
                ready = self.wait_for("ready")
            except BaseException:
                self.__exit__()
                raise
            self.port = _port_of(ready, "LMTP")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 30, count: int = 1) -> str:
        """The ``count``-th log line containing ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in list(self.lines) if text in line]
            if len(found) >= count:
                return found[count - 1]
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no log line with {text!r}:\n{''.join(self.lines[-20:])}")

    def workers(self) -> list[int]:
        """Process ids of the worker processes."""
        return children(self.proc.pid)

    def stop(self, timeout: float = 30) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        finally:
            self.proc.kill()
            self._reader.join(5)

    def __enter__(self) -> "ServeProcess":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
