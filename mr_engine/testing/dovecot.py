"""A throwaway Dovecot for the tests: IMAP and LMTP on loopback ports, Maildirs in a
temporary directory laid out as the engine's ``maildir_path`` writes them.

Users and their password come from a passwd-file (``users``, each with an optional quota
such as ``"1K"``), so an unknown user is refused as in production (550 5.1.1) and a full
one too (552 5.2.2, Dovecot's quota plugin). Logins and LMTP recipients may carry a domain
(``auth_username_format = %Ln``): "alice" and "alice@example.com" are one user.

Dovecot refuses to access mail as root: as root, the mail belongs to ``nobody`` (the engine
then creates Maildirs owned like the directory they are in, ``store.maildir``); otherwise
everything runs as the current user.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from .processes import Peer, free_port, reap, wait_until

BINARY = "/usr/sbin/dovecot"
PASSWORD = "secret"
START_TIMEOUT = 30.0


def missing() -> str | None:
    """Why no Dovecot can be started here, or None."""
    needed = (BINARY, "/usr/lib/dovecot/imap", "/usr/lib/dovecot/lmtp")
    if not all(os.path.exists(path) for path in needed):
        return "Dovecot is not installed (apt-get install dovecot-imapd dovecot-lmtpd)"
    return None


class Dovecot(Peer):
    """Started by the constructor, stopped by ``stop`` (or leaving the ``with`` block)."""

    def __init__(self, users: dict[str, str | None]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mr-dovecot-"))
        os.chmod(self.root, 0o755)  # the mail user reaches its Maildirs through it
        self.imap_port, self.lmtp_port = free_port(), free_port()
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(mode=0o755)
        self.mail_user, self.mail_group, internal, login = _accounts()
        shutil.chown(self.root / "mail", self.mail_user, self.mail_group)
        self.log = self.root / "dovecot.log"
        self._write_users(users)
        config = self.root / "dovecot.conf"
        config.write_text(self._config(internal, login))
        self.proc = subprocess.Popen([BINARY, "-F", "-c", str(config)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        self._up()

    @property
    def maildir_path(self) -> str:
        """The engine's ``maildir_path`` for the Maildirs this Dovecot serves."""
        return f"{self.root}/mail/%u/Maildir"

    @property
    def lmtp_address(self) -> str:
        """The engine's ``store_lmtp`` for this Dovecot."""
        return f"127.0.0.1:{self.lmtp_port}"

    @property
    def lmtp_socket(self) -> str:
        """``store_lmtp`` for the same LMTP service on its unix socket (Dovecot's default)."""
        return f"unix:{self.root}/run/lmtp"

    def imap(self, user: str) -> imaplib.IMAP4:
        """A logged-in IMAP session of ``user`` (log out when done)."""
        session = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)
        session.login(user, PASSWORD)
        return session

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            reap(self.proc)
        shutil.rmtree(self.root, ignore_errors=True)

    def _write_users(self, users: dict[str, str | None]) -> None:
        uid = pwd.getpwnam(self.mail_user).pw_uid
        gid = grp.getgrnam(self.mail_group).gr_gid
        lines = []
        for name, quota in users.items():
            extra = f"userdb_quota_rule=*:storage={quota}" if quota else ""
            lines.append(f"{name}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{self.root}/mail/{name}"
                         f"::{extra}\n")
        (self.root / "users").write_text("".join(lines))

    def _config(self, internal: str, login: str) -> str:
        me = pwd.getpwnam(self.mail_user)
        return _CONFIG.format(root=self.root, imap_port=self.imap_port,
                              lmtp_port=self.lmtp_port, internal=internal, login=login,
                              uid=me.pw_uid, gid=me.pw_gid,
                              # As root, Dovecot's own users keep their own groups.
                              internal_group="" if os.geteuid() == 0 else
                              f"default_internal_group = {self.mail_group}\n")

    def _wait(self) -> None:
        wait_until(lambda: _listening(self.imap_port) and _listening(self.lmtp_port),
                   self.proc, self.log, "Dovecot", START_TIMEOUT)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _accounts() -> tuple[str, str, str, str]:
    """(mail user, mail group, Dovecot's internal user, its login user)."""
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        group = grp.getgrgid(nobody.pw_gid).gr_name
        return "nobody", group, _user_or("dovecot", "nobody"), _user_or("dovenull", "nobody")
    me = pwd.getpwuid(os.geteuid())
    return me.pw_name, grp.getgrgid(me.pw_gid).gr_name, me.pw_name, me.pw_name


def _user_or(name: str, fallback: str) -> str:
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        return fallback


# IMAP and LMTP on loopback, no TLS, plaintext logins (loopback only); the quota plugin so
# that a user's quota_rule in the passwd-file makes LMTP answer 552.
_CONFIG = """\
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_username_format = %Ln
default_internal_user = {internal}
{internal_group}default_login_user = {login}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{root}/mail/%n/Maildir
mail_plugins = quota
lmtp_save_to_detail_mailbox = no
plugin {{
  quota = maildir:User quota
}}
passdb {{
  driver = passwd-file
  args = {root}/users
}}
userdb {{
  driver = passwd-file
  args = {root}/users
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service anvil {{
  chroot =
}}
"""
