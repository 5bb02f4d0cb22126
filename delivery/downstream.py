"""An LMTP client for ``store_lmtp``: one connection, kept open and reused, one transaction
a delivery, and the server's answer as the recipient's ``Outcome``.

LHLO is sent once a connection (RFC 2033 §4.1). A refused MAIL or RCPT is followed by RSET
so the connection stays usable; a connection found closed before DATA (the server's idle
timeout) is opened again and the delivery tried once more, since nothing was delivered yet.
A connection lost after DATA is a temporary failure: the MTA retries, and the message may
then arrive twice, never not at all.
"""

from __future__ import annotations

import re
import smtplib

from .context import Outcome
from .relay import parse_hostport

TIMEOUT = 60.0  # seconds for any one answer; Dovecot answers DATA after its fsync
UNREACHABLE = "4.4.1"  # RFC 3463: no answer from host
LOST = "4.4.2"  # RFC 3463: bad connection

# RFC 3463 §2: class.subject.detail, the class agreeing with the reply code's first digit.
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\s*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _Stale(Exception):
    """The connection was found closed before anything was sent for this delivery."""


class Downstream:
    def __init__(self, address: str, hostname: str, timeout: float = TIMEOUT) -> None:
        self.address = address
        self.hostname = hostname
        self.timeout = timeout
        self._lmtp: smtplib.LMTP | None = None

    def deliver(self, sender: str, recipient: str, content: bytes) -> Outcome:
        """One message to one recipient: the server's answer, or 451 when it gave none."""
        reused = self._lmtp is not None
        try:
            return self._transaction(self._connection(), sender, recipient, content)
        except _Stale:
            self.close()
            if reused:
                return self.deliver(sender, recipient, content)
            return Outcome(451, LOST, f"Downstream LMTP {self.address} closed the connection")
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            return _no_answer(self.address, exc)

    def close(self) -> None:
        if self._lmtp is not None:
            lmtp, self._lmtp = self._lmtp, None
            try:
                lmtp.quit()
            except (OSError, smtplib.SMTPException):
                lmtp.close()

    def _connection(self) -> smtplib.LMTP:
        if self._lmtp is None:
            try:
                self._lmtp = self._connect()
            except (OSError, smtplib.SMTPException) as exc:
                raise _Unreachable(exc) from exc
        return self._lmtp

    def _connect(self) -> smtplib.LMTP:
        if self.address.startswith("unix:"):
            lmtp = smtplib.LMTP(local_hostname=self.hostname, timeout=self.timeout)
            code, text = lmtp.connect(self.address.removeprefix("unix:"))
        else:
            host, port = parse_hostport(self.address)
            lmtp = smtplib.LMTP(local_hostname=self.hostname, timeout=self.timeout)
            code, text = lmtp.connect(host, port)
        if code != 220:
            lmtp.close()
            raise smtplib.SMTPConnectError(code, text)
        code, text = lmtp.ehlo()  # LHLO
        if code != 250:
            lmtp.close()
            raise smtplib.SMTPHeloError(code, text)
        return lmtp

    def _transaction(self, lmtp: smtplib.LMTP, sender: str, recipient: str,
                     content: bytes) -> Outcome:
        options = _mail_options(lmtp, sender, recipient, content)
        if isinstance(options, Outcome):
            return options
        try:
            code, text = lmtp.mail(sender, options)
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise _Stale from exc
        if code != 250:
            return _refused(lmtp, code, text)
        code, text = lmtp.rcpt(recipient)
        if code not in (250, 251):
            return _refused(lmtp, code, text)
        try:
            code, text = lmtp.data(_crlf(content))  # one recipient: one answer (RFC 2033 §4.2)
        except smtplib.SMTPDataError as exc:  # DATA itself refused
            return _refused(lmtp, exc.smtp_code, exc.smtp_error)
        return outcome_of(code, text)


class _Unreachable(smtplib.SMTPException):
    """Connecting, the greeting or LHLO failed."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(_describe(cause))


def _no_answer(address: str, exc: BaseException) -> Outcome:
    if isinstance(exc, _Unreachable):
        return Outcome(451, UNREACHABLE, f"Downstream LMTP {address} unreachable: {exc}")
    return Outcome(451, LOST, f"Downstream LMTP {address} connection lost: {_describe(exc)}")


def _mail_options(lmtp: smtplib.LMTP, sender: str, recipient: str,
                  content: bytes) -> list[str] | Outcome:
    options = []
    if not (sender.isascii() and recipient.isascii()):
        if not lmtp.has_extn("smtputf8"):
            # RFC 6531 §3.2: a UTF-8 address only with the extension.
            return Outcome(553, "5.6.7", "Downstream LMTP does not offer SMTPUTF8")
        options.append("SMTPUTF8")
    if not content.isascii() and lmtp.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    return options


def _refused(lmtp: smtplib.LMTP, code: int, text: bytes | str) -> Outcome:
    try:
        lmtp.rset()
    except (OSError, smtplib.SMTPException):
        lmtp.close()  # the next delivery connects afresh
    return outcome_of(code, text)


def outcome_of(code: int, text: bytes | str) -> Outcome:
    """The server's reply as ours: its code, its enhanced status code (or the class's
    x.0.0 when it gave none), its text on one line."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [_CONTROL.sub("", line).strip() for line in text.splitlines()] or [""]
    match = _ENHANCED.match(lines[0])
    if code // 100 not in (2, 4, 5):
        return Outcome(451, LOST, f"Downstream LMTP answered {code} {lines[0]}")
    status = f"{code // 100}.0.0"
    if match and int(match.group(1)) == code // 100:
        status = ".".join(match.groups())
    words = " ".join(_ENHANCED.sub("", line) for line in lines).strip()
    return Outcome(code, status, words or "(no text)")


def _crlf(content: bytes) -> bytes:
    # RFC 5321 §2.3.8: lines end in CRLF on the wire; smtplib sends bytes as they are.
    return re.sub(rb"\r?\n", b"\r\n", content)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):  # a greeting or LHLO refused
        return outcome_of(exc.smtp_code, exc.smtp_error).reply()
    return _CONTROL.sub("", str(exc)) or type(exc).__name__
