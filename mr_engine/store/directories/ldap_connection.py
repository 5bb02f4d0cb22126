"""The LDAP servers of ``ldap_uri``, asked in order: failover, timeouts, paged searches.

One connection per server, opened on first use and kept, bound as ``ldap_bind_user``
(anonymous when empty), secured with StartTLS when ``ldap_starttls`` says so (or ldaps://),
and every connect and operation bounded by ``ldap_network_timeout``. TLS checks the
server's certificate and name against the CA file libldap (and so Kopano) uses: the
``LDAPTLS_CACERT`` variable, else ``TLS_CACERT`` in /etc/ldap/ldap.conf, else the system's.

A server that fails is passed over for the next one, which is then asked first from then
on; a kept connection that fails is opened again once before its server counts as failed
(a restarted server). When every server fails, ``DirectoryUnavailable`` names them and why.

Searches answer ``(dn, attributes)`` pairs, the attribute names lower-cased and the values
as the server sent them (bytes): ``core.ldap_entries`` reads them.
"""

from __future__ import annotations

import os
import re
import ssl
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import ldap3
import ldap3.utils.dn
from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError

from mr_engine.config import Settings
from mr_engine.store.directories import DirectoryUnavailable

RawEntry = tuple[str, dict[str, list[bytes]]]
T = TypeVar("T")

# The paged results control (RFC 2696).
_PAGED = "1.2.840.113556.1.4.319"
_NO_SUCH_OBJECT, _INVALID_DN_SYNTAX = 32, 34
LDAP_CONF = "/etc/ldap/ldap.conf"
_SIZE_LIMIT_EXCEEDED = 4


class LdapServers:
    """The servers of one ``ldap_uri``; safe to share between threads (one at a time)."""

    def __init__(self, settings: Settings) -> None:
        self.uris = settings.ldap_uri
        self.base = settings.ldap_search_base
        self._settings = settings
        self._preferred = 0
        self._connections: dict[str, ldap3.Connection] = {}
        self._lock = threading.Lock()

    def search(self, query: str, attributes: list[str], base: str | None = None,
               scope: str = ldap3.SUBTREE, limit: int = 0) -> list[RawEntry]:
        """Entries under ``base`` (the search base) matching ``query``, every page."""
        def run(connection: ldap3.Connection) -> list[RawEntry]:
            return _paged(connection, base or self.base, query, attributes, scope, limit,
                          self._settings.ldap_page_size)
        return self._ask(run)

    def read(self, dn: str, query: str, attributes: list[str]) -> RawEntry | None:
        """The entry at ``dn`` if it matches ``query``; None if there is none (or ``dn``
        is no DN: a member list's value, not the server's fault)."""
        try:
            ldap3.utils.dn.parse_dn(dn)
        except LDAPInvalidDnError:
            return None
        found = self.search(query, attributes, base=dn, scope=ldap3.BASE)
        return found[0] if found else None

    def close(self) -> None:
        with self._lock:
            for uri in list(self._connections):
                self._drop(uri)

    def _ask(self, operation: Callable[[ldap3.Connection], T]) -> T:
        with self._lock:
            errors = []
            for index in self._order():
                uri = self.uris[index]
                try:
                    result = self._on(uri, operation)
                except (LDAPException, OSError) as exc:
                    errors.append(f"{uri}: {_reason(exc)}")
                    continue
                self._preferred = index  # after a failure, the one that answered goes first
                return result
        raise DirectoryUnavailable("directory unavailable: " + "; ".join(errors)
                                   if errors else "directory unavailable: ldap_uri is empty")

    def _order(self) -> list[int]:
        count = len(self.uris)
        return [(self._preferred + step) % count for step in range(count)]

    def _on(self, uri: str, operation: Callable[[ldap3.Connection], T]) -> T:
        kept = uri in self._connections
        try:
            return operation(self._connection(uri))
        except (LDAPException, OSError):
            self._drop(uri)
            if not kept:
                raise
        return operation(self._connection(uri))  # a kept one may be stale: once more, anew

    def _connection(self, uri: str) -> ldap3.Connection:
        connection = self._connections.get(uri)
        if connection is None:
            connection = self._open(uri)
            self._connections[uri] = connection
        return connection

    def _open(self, uri: str) -> ldap3.Connection:
        timeout = self._settings.ldap_network_timeout or None
        server = ldap3.Server(uri, connect_timeout=timeout, get_info=ldap3.NONE, tls=_tls())
        bind = (ldap3.AUTO_BIND_TLS_BEFORE_BIND if self._settings.ldap_starttls
                else ldap3.AUTO_BIND_NO_TLS)
        return ldap3.Connection(server, user=self._settings.ldap_bind_user or None,
                                password=self._settings.ldap_bind_passwd or None,
                                auto_bind=bind, receive_timeout=timeout,
                                raise_exceptions=False, read_only=True,
                                # AD answers with referrals to other domains' servers
                                # (searchResRef): not followed, they are not ours.
                                auto_referrals=False)

    def _drop(self, uri: str) -> None:
        connection = self._connections.pop(uri, None)
        if connection is not None:
            try:
                connection.unbind()
            except (LDAPException, OSError):
                pass  # it is gone already


def _tls() -> ldap3.Tls:
    """Certificates required and checked (ldap3's default checks none)."""
    return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca_file())


def ca_file(conf: str = LDAP_CONF) -> str | None:
    """The CA certificates file as libldap finds it (ldap.conf(5)), or None."""
    named = os.environ.get("LDAPTLS_CACERT")
    if named:
        return named
    try:
        with open(conf, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                words = line.split(None, 1)
                if len(words) == 2 and words[0].upper() == "TLS_CACERT":
                    return words[1].strip()
    except OSError:
        pass  # no ldap.conf: the system's CAs
    return None


def _paged(connection: ldap3.Connection, base: str, query: str, attributes: list[str],
           scope: str, limit: int, page_size: int) -> list[RawEntry]:
    entries: list[RawEntry] = []
    cookie: Any = None
    while True:
        connection.search(base, query, search_scope=scope, attributes=attributes,
                          size_limit=limit, paged_size=None if limit else page_size,
                          paged_cookie=cookie)
        # Kept before complete_entry asks more on the same connection.
        result, response = connection.result, connection.response or []
        code = result.get("result", 0)
        if code in (_NO_SUCH_OBJECT, _INVALID_DN_SYNTAX):
            return entries
        if code not in (0, _SIZE_LIMIT_EXCEEDED):
            raise LDAPException(f"{result.get('description')}: {result.get('message') or query}")
        entries += [complete_entry(connection, item) for item in response
                    if item.get("type") == "searchResEntry"]
        cookie = _next_page(result)
        if not cookie or limit:
            return entries


def _next_page(result: dict[str, Any]) -> Any:
    control = (result.get("controls") or {}).get(_PAGED) or {}
    return (control.get("value") or {}).get("cookie")


def complete_entry(connection: ldap3.Connection, item: dict[str, Any]) -> RawEntry:
    """The entry with every value: AD sends a large group's ``member`` in ranges
    (``member;range=0-1499``, MS-ADTS 3.1.1.3.1.3.3), the rest asked for range by range."""
    values, more = ranged(item["raw_attributes"])
    for name, start in more.items():
        while start is not None:
            connection.search(item["dn"], "(objectClass=*)", search_scope=ldap3.BASE,
                              attributes=[f"{name};range={start}-*"])
            page = [i for i in connection.response or () if i.get("type") == "searchResEntry"]
            got, rest = ranged(page[0]["raw_attributes"]) if page else ({}, {})
            values.setdefault(name, []).extend(got.get(name, []))
            start = rest.get(name)
    return item["dn"], values


_RANGE = re.compile(r"(?P<name>[^;]+);range=(?P<low>\d+)-(?P<high>\d+|\*)", re.IGNORECASE)


def ranged(raw: dict[str, list[bytes]]) -> tuple[dict[str, list[bytes]], dict[str, int]]:
    """Attribute values by lower-cased name, ranges merged, and for each attribute whose
    last range is not the end (``-*``), where the next one starts."""
    values: dict[str, list[bytes]] = {}
    more: dict[str, int] = {}
    for name, got in raw.items():
        match = _RANGE.fullmatch(name)
        key = (match["name"] if match else name).lower()
        values.setdefault(key, []).extend(got)
        if match and match["high"] != "*":
            more[key] = int(match["high"]) + 1
    return values, more


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:200]
