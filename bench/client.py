"""A concurrent raw-socket LMTP client (asyncio streams) that drives a server and times it.

Each connection says LHLO once and then sends transactions back to back, as an MTA with a
cached connection does: MAIL, RCPT and DATA pipelined (RFC 2920), then the message, then one
reply per recipient (RFC 2033 §4.2). A transaction's latency runs from writing MAIL to
reading the last recipient's reply. The load is bounded both by a number of messages and by
a duration, and every read has a timeout, so a stuck server cannot hang the benchmark.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

READ_TIMEOUT = 30.0  # seconds for any single reply


class LMTPError(RuntimeError):
    """The server answered something the client cannot go on from."""


class Latencies:
    """What a load result says of its measured ``seconds`` and its ``latencies`` (seconds,
    one per transaction)."""

    latencies: list[float]
    seconds: float

    def rate(self, count: int) -> float:
        """``count`` per second of the measured period."""
        return count / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000.0

    def latency_figures(self) -> dict:
        return {"p50_ms": round(self.percentile_ms(50), 2),
                "p99_ms": round(self.percentile_ms(99), 2)}


@dataclass
class LoadResult(Latencies):
    target: str
    connections: int
    recipients: int  # per message
    messages: int = 0  # transactions completed in the measured period
    deliveries: int = 0  # recipient replies 250 in the measured period
    refused: int = 0  # recipient replies other than 250
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)
    errors: list[str] = field(default_factory=list)

    @property
    def deliveries_per_s(self) -> float:
        return self.rate(self.deliveries)

    @property
    def messages_per_s(self) -> float:
        return self.rate(self.messages)

    def as_dict(self) -> dict:
        return {"target": self.target, "connections": self.connections,
                "recipients_per_message": self.recipients, "messages": self.messages,
                "deliveries": self.deliveries, "refused": self.refused,
                "seconds": round(self.seconds, 3),
                "deliveries_per_s": round(self.deliveries_per_s, 1),
                "messages_per_s": round(self.messages_per_s, 1),
                **self.latency_figures(), "errors": self.errors[:5]}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100.0 * len(ordered)) - 1)
    return ordered[rank]


class Connection:
    """One LMTP session on a stream pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                READ_TIMEOUT)
        conn = cls(reader, writer)
        greeting = await conn.reply()
        if not greeting[0].startswith("220"):
            raise LMTPError(f"greeting: {greeting[0]}")
        lhlo = await conn.command("LHLO bench.example")
        if not lhlo[-1].startswith("250"):
            raise LMTPError(f"LHLO: {lhlo[-1]}")
        return conn

    async def reply(self) -> list[str]:
        """One (possibly multi-line) reply."""
        lines = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), READ_TIMEOUT)
            if not raw:
                raise LMTPError("connection closed by the server")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return lines

    async def command(self, line: str) -> list[str]:
        self.writer.write(line.encode() + b"\r\n")
        return await self.reply()

    async def transaction(self, sender: str, recipients: list[str], body: bytes) -> list[str]:
        """MAIL+RCPT+DATA pipelined, then the dot-stuffed body; the per-recipient replies."""
        head = [f"MAIL FROM:<{sender}>"] + [f"RCPT TO:<{r}>" for r in recipients] + ["DATA"]
        self.writer.write("".join(line + "\r\n" for line in head).encode())
        mail = (await self.reply())[-1]
        if not mail.startswith("250"):
            raise LMTPError(f"MAIL: {mail}")
        rcpt = [(await self.reply())[-1] for _ in recipients]
        data = (await self.reply())[-1]
        accepted = sum(r.startswith("250") for r in rcpt)
        if not data.startswith("354"):
            return [r for r in rcpt if not r.startswith("250")] + [data] * accepted
        self.writer.write(body)
        replies = [(await self.reply())[-1] for _ in range(accepted)]
        return [r for r in rcpt if not r.startswith("250")] + replies

    async def close(self) -> None:
        try:
            self.writer.write(b"QUIT\r\n")
            await asyncio.wait_for(self.reader.read(), 2.0)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)
        except (OSError, asyncio.TimeoutError):
            pass


# A message factory: (connection index, sequence number) -> (recipients, dot-stuffed body).
MessageFactory = Callable[[int, int], tuple[list[str], bytes]]


async def run_load(target: str, host: str, port: int, connections: int, recipients: int,
                   factory: MessageFactory, max_messages: int, duration: float,
                   warmup: int = 5, sender: str = "sender@bench.example") -> LoadResult:
    """Send up to ``max_messages`` (or for ``duration`` seconds) over ``connections`` sessions.

    Each connection first sends ``warmup`` transactions that are not counted (connections,
    caches and the server's first batches settle); the measured period starts when every
    connection has finished its warm-up.
    """
    result = LoadResult(target, connections, recipients)
    conns = [await Connection.open(host, port) for _ in range(connections)]
    counter = {"started": 0}
    ready = asyncio.Barrier(connections + 1)
    state: dict[str, float] = {}  # "start": when the measured period began

    async def one(index: int, seq: int, conn: Connection, measured: bool) -> None:
        rcpts, body = factory(index, seq)
        t0 = time.perf_counter()
        replies = await conn.transaction(sender, rcpts, body)
        elapsed = time.perf_counter() - t0
        if not measured:
            return
        ok = sum(r.startswith("250") for r in replies)
        result.messages += 1
        result.deliveries += ok
        result.refused += len(replies) - ok
        result.latencies.append(elapsed)
        if ok < len(replies) and len(result.errors) < 20:
            result.errors.extend(r for r in replies if not r.startswith("250"))

    async def worker(index: int, conn: Connection) -> None:
        seq = 0
        try:
            for _ in range(warmup):
                await one(index, seq, conn, False)
                seq += 1
        finally:
            await ready.wait()
        deadline = state.setdefault("start", time.perf_counter()) + duration
        while counter["started"] < max_messages and time.perf_counter() < deadline:
            counter["started"] += 1
            await one(index, seq, conn, True)
            seq += 1

    tasks = [asyncio.create_task(worker(i, c)) for i, c in enumerate(conns)]
    result.seconds = await measure(tasks, ready, state, duration + READ_TIMEOUT + 10,
                                   lambda: asyncio.gather(*(c.close() for c in conns),
                                                          return_exceptions=True))
    return result


async def measure(tasks: list[asyncio.Task], ready: asyncio.Barrier, state: dict[str, float],
                  timeout: float, closing: Callable[[], Awaitable]) -> float:
    """The measured period of a load: once every task has warmed up (``ready``), until all
    are done; its seconds. The tasks are cancelled and ``closing()`` awaited in any case."""
    try:
        await asyncio.wait_for(ready.wait(), timeout)
        start = state.setdefault("start", time.perf_counter())
        await asyncio.wait_for(asyncio.gather(*tasks), timeout)
        return time.perf_counter() - start
    finally:
        for task in tasks:
            task.cancel()
        await closing()
