"""``python -m bench.sink lmtp|smtp PORT``: a bare aiosmtpd server on 127.0.0.1 that
accepts every recipient and stores nothing.

As LMTP it is the floor of ``--compare sink``: the protocol cost alone, one ``250`` per
recipient after DATA (RFC 2033 §4.2). As SMTP it is the smarthost that takes the engine's
iTIP replies during the meeting-request load, so the relay works as in production (it
offers PIPELINING, as Postfix does).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP


class Discard:
    def __init__(self, per_recipient: bool) -> None:
        self.per_recipient = per_recipient

    async def handle_EHLO(self, server, session, envelope, hostname, responses) -> list[str]:
        # As the smarthost (Postfix, Exim) does: RFC 2920 PIPELINING, which aiosmtpd, reading
        # one command after another from its stream, handles but does not offer.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.per_recipient:
            return "\r\n".join("250 2.0.0 Ok" for _ in envelope.rcpt_tos)
        return "250 2.0.0 Ok"


async def serve(protocol: str, port: int) -> None:
    cls = LMTP if protocol == "lmtp" else SMTP
    handler = Discard(per_recipient=protocol == "lmtp")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: cls(handler, hostname="sink.bench.example", ident="bench sink",
                    enable_SMTPUTF8=True, decode_data=False),
        host="127.0.0.1", port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"sink ({protocol}) ready on 127.0.0.1:{port}", flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("lmtp", "smtp") or not argv[1].isdigit():
        print("usage: python -m bench.sink lmtp|smtp PORT", file=sys.stderr)
        return 2
    asyncio.run(serve(argv[0], int(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
