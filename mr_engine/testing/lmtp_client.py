"""Talking LMTP (RFC 2033) to a server under test: a raw socket client that sends lines and
reads replies (pipelining too), a whole pipelined transaction, the DATA body's wire form, and
one message through the standard library's client."""

from __future__ import annotations

import smtplib
import socket
from dataclasses import dataclass, field

from .accounts import ROOM


def dot_stuff(message: bytes) -> bytes:
    """The DATA body on the wire: CRLF lines, leading dots doubled, the final dot."""
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"\r\n".join(stuffed) + b"\r\n.\r\n"


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


def deliver(port: int, message: bytes, to: str = ROOM) -> None:
    """``message`` from the organizer to ``to``, accepted (smtplib's LMTP client)."""
    with smtplib.LMTP("127.0.0.1", port) as client:
        assert client.sendmail("organizer@remote.example", [to], message) == {}
