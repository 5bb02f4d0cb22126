"""A throwaway OpenLDAP ``slapd`` for the tests: one loopback port, a temporary directory,
Kopano's schema (``ldap_schema``) and a tree (``ldap_trees``) loaded before it starts.

It can be stopped and started again on the same port with the same data (the "directory
unavailable" tests), frozen (a hung server: timeouts), run twice side by side (failover
between ``ldap_uri`` entries), offer StartTLS, and be changed while it runs (``modify``,
``rename``, ``delete``, ``add``) as its administrator. ``settings()`` are the engine's
ldap_* settings for it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import ldap3

from mr_engine.config import LDAP_AD_DEFAULTS

from . import ldap_schema, ldap_trees
from .ldap_trees import Entry
from .processes import free_port

BINARY = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SYSTEM_SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
PASSWORD = "secret"
START_TIMEOUT = 20.0

_CONFIG = """\
{includes}
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {root}/slapd.pid
sizelimit unlimited
{tls}
database mdb
maxsize 104857600
suffix "{base}"
rootdn "{admin}"
rootpw {password}
directory {root}/data
index objectClass,uid,cn,mail,kopanoAliases,memberUid,member,sAMAccountName eq
access to * by * read
"""


def missing() -> str | None:
    """Why no slapd can be started here, or None."""
    if not (os.path.exists(BINARY) and os.path.exists(SLAPADD)):
        return "OpenLDAP's slapd is not installed (apt-get install slapd ldap-utils)"
    return None


TREES = {"openldap": (ldap_trees.BASE, ldap_trees.openldap_tree),
         "ad": (ldap_trees.AD_BASE, ldap_trees.ad_tree)}


class Slapd:
    """Started by the constructor with the tree ``kind`` ("openldap" or "ad"); stopped and
    removed by ``close`` (or leaving the ``with`` block)."""

    def __init__(self, kind: str = "openldap", extra: Sequence[Entry] = (),
                 tls: bool = False) -> None:
        """``extra``: entries loaded beside the tree (``ldap_trees.posix_user``, e.g. the
        benchmark's users); ``tls``: StartTLS with a certificate for 127.0.0.1 that
        ``ca_file`` signs (the client needs it to trust the server)."""
        self.kind = kind
        self.tls = tls
        self.base, tree = TREES[kind]
        self.admin = f"cn=admin,{self.base}"
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="mr-slapd-"))
        (self.root / "data").mkdir()
        if tls:
            self._certificate()
        self.config = self.root / "slapd.conf"
        self.config.write_text(self._config())
        (self.root / "tree.ldif").write_text(ldap_trees.ldif([*tree(), *extra]))
        # -q: no checks of what we wrote ourselves (ten times faster for many entries)
        self._run(SLAPADD, "-q", "-f", str(self.config), "-l", str(self.root / "tree.ldif"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def ca_file(self) -> str:
        """The self-signed certificate, as a CA file (``LDAPTLS_CACERT``)."""
        return str(self.root / "cert.pem")

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def settings(self, **changes: Any) -> dict[str, Any]:
        """The ldap_* settings of an engine reading this server (``changes`` on top), for
        ``Settings.replace`` or ``load_settings``: the AD tree's with AD's defaults."""
        values: dict[str, Any] = {"user_plugin": "ldap", "ldap_uri": (self.uri,),
                                  "ldap_bind_user": self.admin, "ldap_bind_passwd": PASSWORD,
                                  "ldap_search_base": self.base, "ldap_network_timeout": 5,
                                  "ldap_server_type": self.kind}
        if self.kind == "ad":
            values.update(LDAP_AD_DEFAULTS)
            # See ldap_schema: no filter matches cosine's otherMailbox.
            values["ldap_emailaliases_attribute"] = "kopanoAliases"
        return {**values, **changes}

    def start(self) -> None:
        if self.running:
            return
        log = open(self.root / "slapd.log", "ab")
        self.proc = subprocess.Popen(
            [BINARY, "-f", str(self.config), "-h", f"{self.uri}/", "-d", "0"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait()

    def stop(self) -> None:
        """Stop the server, keeping its data for ``start``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen one cannot hear SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections open, nothing answered (a hung server)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Slapd":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- changes, as the administrator ------------------------------------------------

    def modify(self, dn: str, **replace: list[Any]) -> None:
        """Replace attributes of ``dn`` (an empty list removes one)."""
        self._change("modify", dn, {name: [(ldap3.MODIFY_REPLACE, values)]
                                    for name, values in replace.items()})

    def rename(self, dn: str, new_rdn: str) -> None:
        self._change("modify_dn", dn, new_rdn)

    def delete(self, dn: str) -> None:
        self._change("delete", dn)

    def add(self, dn: str, attributes: dict[str, list[Any]]) -> None:
        self._change("add", dn, attributes=attributes)

    def _change(self, operation: str, dn: str, *args: Any, **kwargs: Any) -> None:
        with ldap3.Connection(ldap3.Server(self.uri), self.admin, PASSWORD,
                              auto_bind=True, raise_exceptions=True) as connection:
            getattr(connection, operation)(dn, *args, **kwargs)

    # --- setting up ----------------------------------------------------------------------

    def _config(self) -> str:
        (self.root / "kopano.schema").write_text(ldap_schema.kopano_schema())
        (self.root / "ad.schema").write_text(ldap_schema.ad_schema())
        includes = [f"include /etc/ldap/schema/{name}.schema" for name in SYSTEM_SCHEMAS]
        includes += [f"include {self.root}/kopano.schema", f"include {self.root}/ad.schema"]
        tls = (f"TLSCertificateFile {self.root}/cert.pem\n"
               f"TLSCertificateKeyFile {self.root}/key.pem\n") if self.tls else ""
        return _CONFIG.format(includes="\n".join(includes), root=self.root, base=self.base,
                              admin=self.admin, password=PASSWORD, tls=tls)

    def _certificate(self) -> None:
        self._run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                  "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                  "-keyout", str(self.root / "key.pem"), "-out", str(self.root / "cert.pem"))

    def _run(self, *command: str) -> None:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.strip()[-2000:]}")

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                log = (self.root / "slapd.log").read_text(errors="replace")
                raise RuntimeError(f"slapd exited: {log[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"slapd did not listen on {self.port} in {START_TIMEOUT:.0f}s")
