"""The relay's SMTP client: smtplib's, with pipelined transactions and DATA's answer kept.

Where the smarthost offers PIPELINING (RFC 2920; Postfix and Exim do), a message's MAIL,
RCPT and DATA go out in one write and their answers are read in order (§3.1: DATA may end
a group), and the content follows the 354: two round trips a message instead of three plus
one a recipient. smtplib's ``sendmail`` waits for each answer in turn; the outcome here is
the same as its: the same exceptions for a refused sender, all recipients refused or a
refused DATA, the same dict of refused recipients otherwise, and RSET after a refusal.
"""

from __future__ import annotations

import re
import smtplib
from typing import Sequence

Reply = tuple[int, bytes]

_DOT = re.compile(rb"(?m)^\.")
_ACCEPTED = (250, 251)


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
        options = list(mail_options)
        if self.has_extn("size"):
            options.insert(0, f"size={len(msg)}")
        return self._pipelined(from_addr, list(to_addrs), msg, options)

    def _pipelined(self, sender: str, recipients: list[str], content: bytes,
                   options: Sequence[str]) -> dict[str, Reply]:
        mail = self._mail_argument(sender, options)  # before any write: may refuse SMTPUTF8
        group = [f"MAIL {mail}\r\n"] + [f"RCPT TO:<{r}>\r\n" for r in recipients] + ["DATA\r\n"]
        self.send("".join(group))
        refused = self._group_taken(sender, recipients, self._replies(len(group)))
        self._content_taken(self._content(content))
        return refused

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

    def _content_taken(self, answer: Reply) -> None:
        """The answer to the content: anything but 250 raises SMTPDataError, after RSET
        (or, for 421, the server closing, with the connection closed), as in sendmail."""
        code, resp = answer
        if code == 250:
            return
        if code == 421:
            self.close()
        else:
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

    def _content(self, content: bytes) -> Reply:
        """The message after the 354: dot-stuffed (RFC 5321 §4.5.2), ended by CRLF . CRLF."""
        data = _DOT.sub(b"..", content)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        self.send(data + b".\r\n")
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
