"""Trace headers of a delivery (RFC 5321 §4.4): Received for this hop, and Return-Path and
Delivered-To, which only the final delivery writes (as Postfix and Dovecot write them).

Handing a message on to another LMTP server (``store_lmtp``) is not the final delivery:
that server adds its own Return-Path and Delivered-To, so only Received goes with it.
"""

from __future__ import annotations

import re

from .context import Delivery

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def received(d: Delivery) -> bytes:
    env = d.envelope
    stamp = d.now.strftime("%a, %d %b %Y %H:%M:%S +0000")
    helo, rcpt = _clean(env.helo), _clean(d.recipient)
    peer = f" ({_clean(env.peer)})" if env.peer else ""
    return (f"Received: from {helo or 'unknown'}{peer}\r\n"
            f"\tby {d.settings.hostname} (mr-engine) with LMTP\r\n"
            f"\tfor <{rcpt}>; {stamp}\r\n").encode("utf-8", "surrogateescape")


def final_delivery(d: Delivery) -> bytes:
    return (f"Return-Path: <{_clean(d.envelope.sender)}>\r\n"
            f"Delivered-To: {_clean(d.recipient)}\r\n").encode("utf-8", "surrogateescape")


def _clean(value: str) -> str:
    # aiosmtpd splits commands on LF only: a bare CR in LHLO or an address must not
    # start a header line of its own in the stored message.
    return _CONTROL.sub("", value)
