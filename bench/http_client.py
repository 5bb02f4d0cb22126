"""A lean concurrent HTTP/1.1 client on asyncio streams that drives a server and times it.

It shares the machine's cores with the server it measures, so it does little: it writes a
prepared request, reads the status line, the headers and a body sized by Content-Length or
chunked (RFC 9112 §6-7), and keeps the connection for the next request unless the server
closes it (an HTTP/1.0 answer or ``Connection: close``, RFC 9112 §9.3), when the next
request opens a new one, its connect time counted in its latency. Each client sends
requests back to back; the load is bounded by a duration, and as a whole by a timeout.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable

from .client import Latencies, measure

READ_TIMEOUT = 120.0  # seconds for one response: Radicale's REPORT can be slow


class HTTPError(RuntimeError):
    """The server answered something that is not HTTP/1.x."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # path and query
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def wire(self, host: str) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1", f"Host: {host}",
                 *(f"{k}: {v}" for k, v in self.headers)]
        if self.body or self.method not in ("GET", "HEAD"):
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


class Connection:
    """One client: a kept-alive stream pair, reopened when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.opened = 0  # connections opened so far

    async def send(self, request: Request) -> Response:
        if self.writer is None:
            await self._open()
        assert self.writer is not None and self.reader is not None
        self.writer.write(request.wire(f"{self.host}:{self.port}"))
        # No timeout of its own (asyncio.wait_for costs a tenth of the client's time per
        # request); the load as a whole has one (``measure``), ``fetch`` callers their own.
        response, keep = await read_response(self.reader)
        if not keep:
            await self.close()
        return response

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), READ_TIMEOUT)
        self.opened += 1

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            except (OSError, asyncio.TimeoutError):
                pass


async def read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    """One response, and whether the connection stays open after it."""
    status_line = await reader.readline()
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HTTPError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers = await _headers(reader)
    body = await _body(reader, headers)
    keep = parts[0] == b"HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return Response(int(parts[1]), headers, body), keep


async def _headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _chunked(reader)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()  # delimited by the end of the connection (RFC 9112 §6.3)


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while size := int((await reader.readline()).split(b";")[0], 16):
        parts.append(await reader.readexactly(size))
        await reader.readline()  # the CRLF after the chunk
    await _headers(reader)  # the trailer section, up to its empty line
    return b"".join(parts)


@dataclass
class HttpLoadResult(Latencies):
    target: str
    clients: int
    requests: int = 0  # answered as expected in the measured period
    failed: int = 0  # answered otherwise
    seconds: float = 0.0
    connections_opened: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"target": self.target, "clients": self.clients, "requests": self.requests,
                "failed": self.failed, "seconds": round(self.seconds, 3),
                "requests_per_s": round(self.rate(self.requests), 2), **self.latency_figures(),
                "connections_opened": self.connections_opened, "errors": self.errors[:5]}


# (client index, sequence number) -> the request to send.
RequestFactory = Callable[[int, int], Request]
# The response -> None if it is what was asked for, else why not (one line).
Verdict = Callable[[Response], str | None]


async def run_http_load(target: str, port: int, clients: int, factory: RequestFactory,
                        verdict: Verdict, duration: float, warmup: int = 1) -> HttpLoadResult:
    """``clients`` connections sending requests back to back for ``duration`` seconds.

    Each client first sends ``warmup`` uncounted requests; the measured period starts when
    all have. A request started before the end is waited for and counted, so the period
    ends when the last one is answered: a slow server is measured by time, not by count."""
    result = HttpLoadResult(target, clients)
    conns = [Connection("127.0.0.1", port) for _ in range(clients)]
    ready = asyncio.Barrier(clients + 1)
    state: dict[str, float] = {}  # "start": when the measured period began

    async def one(index: int, seq: int, measured: bool) -> None:
        t0 = time.perf_counter()
        response = await conns[index].send(factory(index, seq))
        elapsed = time.perf_counter() - t0
        wrong = verdict(response)
        if wrong is not None and len(result.errors) < 20:
            result.errors.append(wrong)
        if measured:
            result.requests += wrong is None
            result.failed += wrong is not None
            result.latencies.append(elapsed)

    async def client(index: int) -> None:
        try:
            for seq in range(warmup):
                await one(index, seq, False)
        finally:
            await ready.wait()
        seq, deadline = warmup, state.setdefault("start", time.perf_counter()) + duration
        while time.perf_counter() < deadline:
            await one(index, seq, True)
            seq += 1

    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    result.seconds = await measure(tasks, ready, state,
                                   duration + READ_TIMEOUT * (warmup + 1) + 10,
                                   lambda: asyncio.gather(*(c.close() for c in conns),
                                                          return_exceptions=True))
    result.connections_opened = sum(c.opened for c in conns)
    return result
