"""Running the real server in the test process, and talking to it over real sockets."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field

from bench.client import dot_stuff
from bench.processes import children, engine_command
from mr_engine.delivery.server import Server
from mr_engine.config import Settings


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


async def _make(settings: Settings, kwargs) -> Server:
    return Server(settings, **kwargs)


@dataclass
class RawClient:
    """A minimal LMTP client on a plain socket: send lines, read replies (pipelining too)."""

    port: int
    host: str = "127.0.0.1"
    unix_path: str | None = None
    sock: socket.socket = field(init=False)
    _buf: bytes = b""

    def __post_init__(self) -> None:
        if self.unix_path:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(self.unix_path)
        else:
            self.sock = socket.create_connection((self.host, self.port), timeout=30)
        self.sock.settimeout(30)

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self) -> list[str]:
        """One (possibly multi-line) reply."""
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return lines

    def _line(self) -> str:
        while b"\r\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed; buffer {self._buf!r}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line.decode()

    def command(self, line: str) -> list[str]:
        self.send(line + "\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def send_message(client: RawClient, sender: str, recipients: list[str], message: bytes,
                 lhlo: bool = True) -> tuple[list[str], list[str]]:
    """A whole pipelined transaction; returns (RCPT replies, per-recipient DATA replies)."""
    if lhlo:
        client.command("LHLO test.example")
    batch = [f"MAIL FROM:<{sender}>"] + [f"RCPT TO:<{r}>" for r in recipients] + ["DATA"]
    client.send("".join(line + "\r\n" for line in batch))
    assert client.reply()[0].startswith("250"), "MAIL refused"
    rcpt = [client.reply()[0] for _ in recipients]
    data_reply = client.reply()[0]
    accepted = sum(r.startswith("250") for r in rcpt)
    if not data_reply.startswith("354"):
        return rcpt, [data_reply]
    client.send(dot_stuff(message))
    return rcpt, [client.reply()[0] for _ in range(accepted)]


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
            self.port = int(ready.rsplit("127.0.0.1:", 1)[1].split()[0].strip(","))

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
