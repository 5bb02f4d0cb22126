"""A throwaway Postfix for the tests: the smarthost the relay talks to, as in production.

Its smtpd listens on a loopback port and relays everything from 127.0.0.1 to ``relayhost``
(the tests' aiosmtpd smarthost, which records what arrives), with its own queue in a
temporary directory and its log in a file there (``maillog_file = /dev/stdout`` with
``start-fg``, Postfix ≥ 3.4, written to ``log``). It
offers what Postfix offers by default (PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ...). Senders
and recipients listed in ``refuse`` are rejected at MAIL and RCPT (``smtpd_delay_reject =
no``), as an access map would. Postfix's master runs as root and its daemons as the
``postfix`` user: the harness needs root.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from .processes import Peer, free_port, reap, wait_until

BINARY = "/usr/sbin/postfix"
START_TIMEOUT = 30.0

_MAIN = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.test
mydomain = postfix.test
myorigin = postfix.test
mydestination =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{relay_port}
smtp_dns_support_level = disabled
smtpd_delay_reject = no
smtpd_sender_restrictions = check_sender_access inline:{{{senders}}}
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = check_recipient_access inline:{{{recipients}}}, permit
maillog_file = /dev/stdout
"""

_MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def missing() -> str | None:
    """Why no Postfix can be started here, or None."""
    if not os.path.exists(BINARY):
        return "Postfix is not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "Postfix's master runs as root: the Postfix tests need root"
    return None


class Postfix(Peer):
    """Started by the constructor, stopped by ``stop`` (or leaving the ``with`` block)."""

    def __init__(self, relay_port: int, refuse: dict[str, str] | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mr-postfix-"))
        os.chmod(self.root, 0o755)  # Postfix's daemons (user postfix) reach their queue
        self.port = free_port()
        self.conf = self.root / "conf"
        self.conf.mkdir()
        (self.root / "queue").mkdir()
        (self.root / "data").mkdir()
        shutil.chown(self.root / "data", "postfix")
        self.log = self.root / "maillog"
        rules = {address: f"REJECT {why}" for address, why in (refuse or {}).items()}
        # inline: tables (Postfix ≥ 3.0), an entry in braces for the text's spaces.
        table = ", ".join(f"{{ {address} = {rule} }}" for address, rule in rules.items())
        (self.conf / "main.cf").write_text(_MAIN.format(
            root=self.root, relay_port=relay_port, senders=table or "x@x.invalid=DUNNO",
            recipients=table or "x@x.invalid=DUNNO"))
        (self.conf / "master.cf").write_text(_MASTER.format(port=self.port))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([BINARY, "-c", str(self.conf), "start-fg"],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        self._up()

    def stop(self) -> None:
        subprocess.run([BINARY, "-c", str(self.conf), "stop"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        reap(self.proc)
        shutil.rmtree(self.root, ignore_errors=True)

    def _wait(self) -> None:
        wait_until(lambda: _greets(self.port), self.proc, self.log, "Postfix", START_TIMEOUT)
        # The probe's session is logged through postlogd, a moment later under load: once
        # it is, the log holds nothing of the start-up still to come (tests count sessions).
        wait_until(lambda: b"disconnect from" in self.log.read_bytes(), self.proc, self.log,
                   "Postfix's log of the start-up probe", START_TIMEOUT)


def _greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return sock.recv(64).startswith(b"220")
    except OSError:
        return False
