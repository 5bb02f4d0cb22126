"""The relay's SMTP client: smtplib's, with pipelined transactions and DATA's answer kept.

Where the smarthost offers PIPELINING (RFC 2920; Postfix and Exim do), a message's MAIL,
RCPT and DATA go out in one write and their answers are read in order (§3.1: DATA may end
a group), and the content follows the 354. ``send_each`` sends a run of messages so: the
next message's group rides with the content before it (§3.1: the content may begin a
group), one round trip a message where smtplib's ``sendmail`` takes three plus one a
recipient. A message's outcome is that of ``sendmail``: the same exceptions for a refused
sender, all recipients refused or a refused DATA, the same dict of refused recipients
otherwise, and RSET after a refusal (none after refused content with the next group sent:
the end of the content ended that transaction, RFC 5321 §4.1.1.4, and RSET would end the
next one).
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Sequence

Reply = tuple[int, bytes]

_DOT = re.compile(rb"(?m)^\.")
_ACCEPTED = (250, 251)
# What one message of ``send_each`` may end in and leave the session usable; anything else
# (OSError, a closed connection) ends the run.
REFUSALS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException)


@dataclass(frozen=True)
class Mail:
    """One message for ``send_each``: its envelope, its content (CRLF lines) and its MAIL
    options (SMTPUTF8, BODY=8BITMIME)."""

    sender: str
    recipients: list[str]
    content: bytes
    options: Sequence[str] = ()


@dataclass(frozen=True)
class Taken:
    """A message the server took: the recipients it refused, and its answer to the content."""

    refused: dict[str, Reply]
    reply: str


def reply_text(code: int, resp: bytes | str) -> str:
    """An answer as one line for logs and ``last_error``: "250 2.0.0 Ok: queued"."""
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else resp
    return f"{code} {' '.join(text.split())}"


class SmtpClient(smtplib.SMTP):
    """smtplib.SMTP that pipelines where it may and keeps the answer to DATA, which
    ``sendmail`` drops: the next hop's "250 2.0.0 Ok: queued as ..." is what the attempt's
    log line shows."""

    data_reply = ""

    # MAIL and RCPT as smtplib sends them, with the address bracketed as it is: the queue
    # holds addr-specs only (outbox._check_address refuses quoted local parts, spaces and
    # separators), for which smtplib's quoteaddr, an email.utils.parseaddr per address, gave
    # the same and was a fifth of the relay's CPU per message.
    def mail(self, sender: str, options=()):  # type: ignore[no-untyped-def]
        self.putcmd("mail", self._mail_argument(sender, options))
        return self.getreply()

    def rcpt(self, recip: str, options=()):  # type: ignore[no-untyped-def]
        self.putcmd("rcpt", f"TO:<{recip}>{self._options(options)}")
        return self.getreply()

    def data(self, msg):  # type: ignore[no-untyped-def]
        code, text = super().data(msg)
        self.data_reply = reply_text(code, text)
        return code, text

    def sendmail(self, from_addr, to_addrs, msg, mail_options=(),  # type: ignore[no-untyped-def]
                 rcpt_options=()):
        if rcpt_options or not (self.does_esmtp and self.has_extn("pipelining")):
            return super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)
        [outcome] = self.send_each([Mail(from_addr, list(to_addrs), msg, mail_options)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome.refused

    def send_each(self, mails: Sequence[Mail]) -> Iterator[Taken | Exception]:
        """Each message in turn: ``Taken``, or the refusal (one of REFUSALS) ``sendmail``
        would raise for it; anything else raised ends the run. Without PIPELINING, by
        ``sendmail``. A run left unfinished closes the connection when the next group was
        sent already (the server waits for its content)."""
        if not (self.does_esmtp and self.has_extn("pipelining")):
            yield from map(self._sent_alone, mails)
            return
        ahead = False  # whether the message's group went out with the content before it
        try:
            for mail, after in zip(mails, [*mails[1:], None]):
                outcome, ahead = self._pipelined(mail, after, ahead)
                yield outcome
        except GeneratorExit:
            if ahead:
                self.close()
            raise

    def _sent_alone(self, mail: Mail) -> Taken | Exception:
        try:
            refused = super().sendmail(mail.sender, mail.recipients, mail.content, mail.options)
        except REFUSALS as refusal:
            return refusal
        return Taken(refused, self.data_reply)

    def _pipelined(self, mail: Mail, after: Mail | None,
                   ahead: bool) -> tuple[Taken | Exception, bool]:
        """One message whose group was sent already (``ahead``) or is sent now; the group of
        ``after`` goes with its content. Returns its outcome, and whether ``after``'s group
        went out."""
        if not ahead:
            self.send(self._group(mail))  # SMTPServerDisconnected once closed, as smtplib's
        elif self.sock is None:  # closed after a 421 to the content before
            raise smtplib.SMTPServerDisconnected("the server closed the connection")
        try:
            refused = self._group_taken(mail.sender, mail.recipients,
                                        self._replies(len(mail.recipients) + 2))
        except REFUSALS as refusal:
            return refusal, False
        following = self._group_or_none(after)
        answer = self._content(mail.content, following)
        try:
            self._content_taken(answer, following is not None)
        except REFUSALS as refusal:
            return refusal, following is not None
        return Taken(refused, self.data_reply), following is not None

    def _group(self, mail: Mail) -> bytes:
        """MAIL, RCPT and DATA of ``mail``, encoded; raises before any write (SMTPUTF8 not
        offered, an address the command encoding cannot write)."""
        options = list(mail.options)
        if self.has_extn("size"):
            options.insert(0, f"size={len(mail.content)}")
        lines = [f"MAIL {self._mail_argument(mail.sender, options)}\r\n"]
        lines += [f"RCPT TO:<{r}>\r\n" for r in mail.recipients] + ["DATA\r\n"]
        return "".join(lines).encode(self.command_encoding)

    def _group_or_none(self, mail: Mail | None) -> bytes | None:
        """The next message's group to send ahead; None when there is none, or when making it
        fails (it then fails in its own turn, nothing of it sent)."""
        if mail is None:
            return None
        try:
            return self._group(mail)
        except (smtplib.SMTPException, UnicodeError):
            return None

    def _group_taken(self, sender: str, recipients: list[str],
                     answers: list[Reply]) -> dict[str, Reply]:
        """The recipients refused in a group the server took; a refused MAIL, every RCPT
        refused or a refused DATA raise as ``sendmail`` does, after RSET."""
        (mail_code, mail_resp), (data_code, data_resp) = answers[0], answers[-1]
        refused = {r: a for r, a in zip(recipients, answers[1:-1]) if a[0] not in _ACCEPTED}
        if mail_code != 250:
            error: smtplib.SMTPException = smtplib.SMTPSenderRefused(mail_code, mail_resp, sender)
        elif len(refused) == len(recipients):
            error = smtplib.SMTPRecipientsRefused(refused)
        elif data_code != 354:
            error = smtplib.SMTPDataError(data_code, data_resp)
        else:
            return refused
        self._refused_after(answers[-1])
        raise error

    def _content_taken(self, answer: Reply, followed: bool = False) -> None:
        """The answer to the content: anything but 250 raises SMTPDataError, after RSET
        (or, for 421, the server closing, with the connection closed), as in sendmail; no
        RSET when the next group ``followed`` the content."""
        code, resp = answer
        if code == 250:
            return
        if code == 421:
            self.close()
        elif not followed:
            self._rset()
        raise smtplib.SMTPDataError(code, resp)

    def _replies(self, count: int) -> list[Reply]:
        """The answers to a group, in order; a 421 (the server is closing) ends them."""
        answers: list[Reply] = []
        while len(answers) < count:
            answers.append(self.getreply())
            if answers[-1][0] == 421:
                self.close()
                code, resp = answers[-1]
                raise smtplib.SMTPResponseException(code, resp)
        return answers

    def _refused_after(self, last: Reply) -> None:
        """A refused transaction ends as smtplib ends one: RSET (the session stays usable),
        after a single dot if the DATA of the group was taken all the same (§3.1)."""
        if last[0] == 354:
            self.send(b".\r\n")
            self.getreply()
        self._rset()

    def _content(self, content: bytes, following: bytes | None = None) -> Reply:
        """The message after the 354: dot-stuffed (RFC 5321 §4.5.2), ended by CRLF . CRLF,
        and the ``following`` group in the same write."""
        # Most mail has no line that begins with a dot: a search, not a rewrite and copy.
        data = _DOT.sub(b"..", content) if content.startswith(b".") or b"\n." in content \
            else content
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        self.send(b"".join((data, b".\r\n", following or b"")))
        code, resp = self.getreply()
        self.data_reply = reply_text(code, resp)
        return code, resp

    def _mail_argument(self, sender: str, options: Sequence[str]) -> str:
        if options and self.does_esmtp and any(o.lower() == "smtputf8" for o in options):
            if not self.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
            self.command_encoding = "utf-8"
        return f"FROM:<{sender}>{self._options(options)}"

    def _options(self, options: Sequence[str]) -> str:
        return " " + " ".join(options) if options and self.does_esmtp else ""
