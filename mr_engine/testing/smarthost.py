"""A real SMTP smarthost (aiosmtpd) on loopback for the relay to send to, its handler that
records what arrived, and relay settings that point at it."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from mr_engine.config import Settings

from .processes import free_port


@dataclass
class Received:
    """One message as the smarthost accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class Sink:
    """The smarthost's handler: records accepted messages, answers what it is told to."""

    received: list[Received] = field(default_factory=list)
    mail_replies: dict[str, str] = field(default_factory=dict)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    pipelining: bool = False  # offer RFC 2920 PIPELINING, as Postfix and Exim do

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not self.pipelining:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address in self.mail_replies:
            return self.mail_replies[address]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.content))
        return "250 2.0.0 OK"


class Smarthost:
    """An aiosmtpd server on 127.0.0.1 that can be stopped and started on the same port."""

    def __init__(self, pipelining: bool = False, **kwargs) -> None:
        self.port = free_port()
        self.sink = Sink(pipelining=pipelining)
        self.kwargs = kwargs
        self.controller: Controller | None = None

    def start(self) -> "Smarthost":
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port,
                                     **self.kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None


def relay_settings(port: int, **changes) -> Settings:
    """Settings that relay to the smarthost on ``port``, with a short timeout and lifetime."""
    values = dict(smarthost=f"127.0.0.1:{port}", smarthost_timeout=5, queue_lifetime=3600,
                  hostname="mr.test")
    return Settings().replace(**{**values, **changes})
