"""Settings: one typed schema, read from flags > environment > TOML file > defaults.

Every key lives in SCHEMA with its parser and help text, and has its default on its
``Settings`` field. ``load_settings`` returns a frozen ``Settings`` value plus, per key,
where the value came from, so that ``mr-engine config`` can explain the effective
configuration.
"""

from __future__ import annotations

import dataclasses

import grp
import os
import pwd
import re
import shlex
import zoneinfo
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from mr_engine.core import features

ENV_PREFIX = "MR_ENGINE_"
CONFIG_ENV = "MR_ENGINE_CONFIG"
# Read when present and no file is named (--config, MR_ENGINE_CONFIG): a named file replaces
# it. The variable moves it, so that tests never read the machine's own.
SYSTEM_CONFIG = "/etc/mr-engine/mr-engine.toml"
SYSTEM_CONFIG_ENV = "MR_ENGINE_SYSTEM_CONFIG"
STORE_FILE = "mr-engine.db"  # the default store's name in home


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the key."""


def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "yes", "true", "on"}:
        return True
    if text in {"0", "no", "false", "off"}:
        return False
    raise ValueError(f"expected yes/no, got {raw!r}")


def _parse_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected an integer, got {raw!r}")
    return int(str(raw).strip())


def _parse_positive(raw: Any) -> int:
    value = _parse_int(raw)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _parse_workers(raw: Any) -> int:
    """A positive count, or ``auto`` (0): one worker process per CPU."""
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        return 0
    value = _parse_int(raw)
    if value < 0:
        raise ValueError(f"must be auto or at least 0, got {value}")
    return value


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2,
               "g": 1024**3, "gb": 1024**3}


def _parse_scaled(raw: Any, units: Mapping[str, int], what: str) -> int:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = int(raw)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(raw))
        if not match or match.group(2).lower() not in units:
            raise ValueError(f"expected a {what} such as {', '.join(_examples(units))}, got {raw!r}")
        value = int(float(match.group(1)) * units[match.group(2).lower()])
    if value < 0:
        raise ValueError(f"a {what} cannot be negative")
    return value


def _examples(units: Mapping[str, int]) -> list[str]:
    return ["30s", "24h", "5d"] if "d" in units else ["1048576", "512k", "50m"]


def parse_duration(raw: Any) -> int:
    """Seconds from ``90``, ``30s``, ``15m``, ``24h``, ``5d``."""
    return _parse_scaled(raw, _UNITS, "duration")


def parse_size(raw: Any) -> int:
    """Bytes from ``1048576``, ``512k``, ``50m``, ``1g``."""
    return _parse_scaled(raw, _SIZE_UNITS, "size")


def _parse_timezone(raw: Any) -> str:
    name = str(raw).strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name


def _parse_listen(raw: Any) -> tuple[str, ...]:
    result = _parse_listen_optional(raw)
    if not result:
        raise ValueError("at least one listen address is needed")
    return result


def _parse_listen_optional(raw: Any) -> tuple[str, ...]:
    """As ``_parse_listen``; an empty value is no address (that front end is off)."""
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    result = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        if not item.startswith("unix:"):
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port or unix:/path, got {item!r}")
        result.append(item)
    return tuple(result)


def _parse_url(raw: Any) -> str:
    """An http(s) base URL, kept without a trailing slash; empty = derived."""
    text = str(raw).strip().rstrip("/")
    if text and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", text):
        raise ValueError(f"expected http://host[:port][/path], got {raw!r}")
    return text


def _parse_str(raw: Any) -> str:
    return str(raw)


def _parse_names(raw: Any) -> tuple[str, ...]:
    """A comma-separated list of names (a TOML list too), lower-cased; empty for none."""
    items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
    names = (str(item).strip().lower() for item in items)
    return tuple(dict.fromkeys(name for name in names if name))


def _parse_optional_str(raw: Any) -> str:
    return "" if raw is None else str(raw)


def _parse_features(raw: Any) -> tuple[str, ...]:
    """Kopano's feature names, space- or comma-separated (a TOML list too)."""
    return features.parse_names(raw if isinstance(raw, (list, tuple)) else str(raw))


def _parse_command(raw: Any) -> str:
    """A program and its arguments, as a shell would split them (none runs it); empty: none.
    Checked here, so that a script never fails to be split where its event happens."""
    command = _parse_optional_str(raw).strip()
    try:
        shlex.split(command)
    except ValueError as exc:
        raise ValueError(f"cannot split {command!r}: {exc}") from None
    return command


def _parse_positive_duration(raw: Any) -> int:
    value = parse_duration(raw)
    if value < 1:
        raise ValueError("must be at least 1 s")
    return value


def user_id(spec: str) -> int | None:
    """The uid of a user name or number; None when empty (the process's own)."""
    return _account_id(spec, lambda name: pwd.getpwnam(name).pw_uid, "user")


def group_id(spec: str) -> int | None:
    """The gid of a group name or number; None when empty (the process's own)."""
    return _account_id(spec, lambda name: grp.getgrnam(name).gr_gid, "group")


def _account_id(spec: str, lookup: Callable[[str], int], what: str) -> int | None:
    spec = spec.strip()
    if not spec:
        return None
    if spec.isdigit():  # an id needs no entry in /etc/passwd or /etc/group
        return int(spec)
    try:
        return lookup(spec)
    except KeyError:
        raise ValueError(f"unknown {what} {spec!r}") from None


def _account(resolve: Callable[[str], int | None]) -> Callable[[Any], str]:
    """A parser of a user or group, kept as given (a name reads better in ``config``) once
    this machine knows it: an unknown one is a configuration error, not a failed chown."""
    def parse(raw: Any) -> str:
        spec = _parse_optional_str(raw).strip()
        resolve(spec)
        return spec
    return parse


def _parse_mode(raw: Any) -> int:
    """Permission bits: an octal string (``0660``, ``660``, ``0o660``) or a TOML integer."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        digits = str(raw).strip().lower().removeprefix("0o")
        if not re.fullmatch(r"[0-7]{1,4}", digits):
            raise ValueError(f"expected an octal mode such as 0660, got {raw!r}")
        value = int(digits, 8)
    if not 0 <= value <= 0o777:
        raise ValueError(f"expected a mode from 0000 to 0777, got {raw!r}")
    return value


def show_mode(mode: int) -> str:
    return f"{mode:04o}"


# The directory sources ``user_plugin`` chooses from, each with the module that implements
# it (``mr_engine.store.directories``); imported only when chosen, so that a source's own
# client library is needed only where it is used. A new source is its module and one line.
USER_PLUGINS: dict[str, str] = {
    "db": "mr_engine.store.directories.db",
    "ldap": "mr_engine.store.directories.ldap",
}


def _parse_user_plugin(raw: Any) -> str:
    return _parse_choice(raw, USER_PLUGINS)


# Where users' mail goes (``mail_store``), each with the module that files it
# (``mr_engine.delivery``): the engine's own store, Maildirs, or another LMTP server.
MAIL_STORES: dict[str, str] = {
    "db": "mr_engine.delivery.store_db",
    "maildir": "mr_engine.delivery.store_maildir",
    "lmtp": "mr_engine.delivery.store_lmtp",
}


def _parse_mail_store(raw: Any) -> str:
    return _parse_choice(raw, MAIL_STORES)


def _parse_choice(raw: Any, choices: Mapping[str, str]) -> str:
    name = str(raw).strip().lower()
    if name not in choices:
        raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
    return name


def _parse_lmtp_address(raw: Any) -> str:
    """One host:port or unix:/path, or empty (none)."""
    addresses = _parse_listen_optional(raw)
    if len(addresses) > 1:
        raise ValueError(f"expected one host:port or unix:/path, got {raw!r}")
    return addresses[0] if addresses else ""


def check_mail_store(settings: Settings) -> None:
    """``mail_store`` with the setting it needs (checked once every setting is read)."""
    if settings.mail_store == "lmtp" and not settings.store_lmtp:
        raise ConfigError("mail_store = lmtp needs store_lmtp (host:port or unix:/path)")


def check_user_plugin(settings: Settings) -> None:
    """``user_plugin = ldap`` with the servers and the base it needs."""
    if settings.user_plugin != "ldap":
        return
    for name in ("ldap_uri", "ldap_search_base"):
        if not getattr(settings, name):
            raise ConfigError(f"user_plugin = ldap needs {name}")


def _choice(*options: str) -> Callable[[Any], str]:
    """A parser of one word out of ``options`` (case-insensitive)."""
    def parse(raw: Any) -> str:
        word = str(raw).strip().lower()
        if word not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {raw!r}")
        return word
    return parse


def _parse_ldap_uris(raw: Any) -> tuple[str, ...]:
    """Space-separated (Kopano's form; commas and TOML lists too) ldap:// or ldaps:// URIs,
    tried in this order."""
    items = raw if isinstance(raw, (list, tuple)) else re.split(r"[\s,]+", str(raw))
    uris = tuple(str(item).strip() for item in items if str(item).strip())
    for uri in uris:
        if not re.fullmatch(r"ldaps?://[^/\s]+/?", uri, re.IGNORECASE):
            raise ValueError(f"expected ldap://host[:port] or ldaps://host[:port], got {uri!r}")
    return uris


LDAP_SERVER_TYPES = ("openldap", "ad")
# What ``ldap_server_type = ad`` changes: the Active Directory column of Kopano's ldap.cfg
# templates (installer/linux/ldap.m4); the fields' own defaults are the OpenLDAP column.
# load_settings applies them to every one of these keys that no file, variable or flag set.
LDAP_AD_DEFAULTS: dict[str, Any] = {
    "ldap_user_type_attribute_value": "user",
    "ldap_group_type_attribute_value": "group",
    "ldap_user_search_filter": "(objectCategory=Person)",
    "ldap_group_search_filter": "(objectCategory=Group)",
    "ldap_user_unique_attribute": "objectGUID",
    "ldap_user_unique_attribute_type": "binary",
    "ldap_group_unique_attribute": "objectSid",
    "ldap_group_unique_attribute_type": "binary",
    "ldap_loginname_attribute": "sAMAccountName",
    "ldap_emailaliases_attribute": "otherMailbox",
    "ldap_groupmembers_attribute": "member",
    "ldap_groupmembers_attribute_type": "dn",
    "ldap_groupmembers_relation_attribute": "",
    "ldap_group_security_attribute": "groupType",
    "ldap_group_security_attribute_type": "ads",
    "ldap_sendas_attribute_type": "dn",
    "ldap_sendas_relation_attribute": "distinguishedName",
    "ldap_quota_multiplier": 1048576,
}


def _ldap(name: str, parse: Callable[[Any], Any], help: str) -> "Setting":
    """An LDAP attribute setting, its help naming the Active Directory default if other."""
    if name in LDAP_AD_DEFAULTS:
        help += f" (ad: {LDAP_AD_DEFAULTS[name] or 'empty'})"
    return Setting(name, parse, help)


_TEXT_BINARY = _choice("text", "binary")
_DN_TEXT = _choice("dn", "text")


@dataclass(frozen=True)
class Setting:
    """One key of the schema; its default is the ``Settings`` field's (written once)."""

    name: str
    parse: Callable[[Any], Any]
    help: str
    secret: bool = False
    show: Callable[[Any], Any] | None = None  # how ``mr-engine config`` prints the value

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def default(self) -> Any:
        return _DEFAULTS[self.name]


SCHEMA: tuple[Setting, ...] = (
    Setting("home", _parse_str,
            "Directory of the default store and the server's state (empty = the configuration "
            "file's directory, else ./var)"),
    Setting("database_url", _parse_str,
            "SQLAlchemy URL of the store: sqlite:////path or postgresql+psycopg://user@host/db "
            f"(empty = sqlite:///HOME/{STORE_FILE})"),
    Setting("store_group", _account(group_id),
            "Group that may read the SQLite store (files 0640; empty = the owner's alone, 0600)"),
    Setting("hostname", _parse_str, "Name this host uses in greetings and Received"),
    Setting("default_domain", _parse_str, "Domain for addresses given without one"),
    Setting("default_timezone", _parse_timezone,
            "IANA zone for floating and all-day times and for kopano-set-oof input"),
    Setting("trusted_authserv_ids", _parse_names,
            "Comma-separated authserv-ids whose Authentication-Results headers are believed "
            "(RFC 8601; the MTA must strip them from outside mail); empty = none"),
    Setting("user_plugin", _parse_user_plugin,
            "Where users, resources and groups come from: db (the store's own tables) or ldap "
            "(an LDAP or Active Directory server, the ldap_* settings)"),
    Setting("ldap_uri", _parse_ldap_uris,
            "Space-separated ldap:// or ldaps:// URIs of the directory, tried in order "
            "(user_plugin = ldap)"),
    Setting("ldap_starttls", _parse_bool, "Secure ldap:// connections with StartTLS"),
    Setting("ldap_bind_user", _parse_optional_str, "DN to bind as (empty = anonymous)"),
    Setting("ldap_bind_passwd", _parse_optional_str, "Password of ldap_bind_user", secret=True),
    Setting("ldap_search_base", _parse_optional_str,
            "Base DN under which every user and group is searched"),
    Setting("ldap_network_timeout", parse_duration,
            "Timeout of connecting to and of one operation on an LDAP server"),
    Setting("ldap_page_size", _parse_positive, "Entries a paged search fetches at a time"),
    Setting("ldap_server_type", _choice(*LDAP_SERVER_TYPES),
            "openldap or ad: chooses the defaults of the ldap_* attribute settings"),
    Setting("ldap_cache_timeout", parse_duration,
            "How long an entry read from LDAP is used before it is read again (unknown "
            "addresses: 60 s at most)"),
    _ldap("ldap_object_type_attribute", _parse_str, "Attribute naming an entry's type"),
    _ldap("ldap_user_type_attribute_value", _parse_str,
          "Value of ldap_object_type_attribute of users and resources"),
    _ldap("ldap_group_type_attribute_value", _parse_str,
          "Value of ldap_object_type_attribute of groups"),
    _ldap("ldap_user_search_filter", _parse_optional_str,
          "LDAP filter (RFC 4515) users must also match (empty = none)"),
    _ldap("ldap_group_search_filter", _parse_optional_str,
          "LDAP filter (RFC 4515) groups must also match (empty = none)"),
    _ldap("ldap_user_unique_attribute", _parse_str,
          "Attribute that identifies a user for good (renames keep it)"),
    _ldap("ldap_user_unique_attribute_type", _TEXT_BINARY,
          "text or binary (AD's objectGUID)"),
    _ldap("ldap_group_unique_attribute", _parse_str, "Attribute that identifies a group"),
    _ldap("ldap_group_unique_attribute_type", _TEXT_BINARY, "text or binary"),
    _ldap("ldap_loginname_attribute", _parse_str, "Attribute of a user's login name"),
    _ldap("ldap_fullname_attribute", _parse_str, "Attribute of a user's full name"),
    _ldap("ldap_emailaddress_attribute", _parse_str, "Attribute of the primary address"),
    _ldap("ldap_emailaliases_attribute", _parse_str, "Attribute of further addresses"),
    _ldap("ldap_isadmin_attribute", _parse_str, "Attribute marking admins (0/false = not)"),
    _ldap("ldap_nonactive_attribute", _parse_str,
          "Attribute marking non-active users and resources (0/false = active)"),
    _ldap("ldap_resource_type_attribute", _parse_str,
          "Attribute making a non-active user a resource: room or equipment"),
    _ldap("ldap_resource_capacity_attribute", _parse_str,
          "Attribute of a resource's capacity (a number)"),
    _ldap("ldap_groupname_attribute", _parse_str, "Attribute of a group's name"),
    _ldap("ldap_groupmembers_attribute", _parse_str, "Attribute listing a group's members"),
    _ldap("ldap_groupmembers_attribute_type", _DN_TEXT,
          "dn (members are DNs) or text (values of the relation attribute)"),
    _ldap("ldap_groupmembers_relation_attribute", _parse_optional_str,
          "Attribute of a member that text members name (empty = the unique attribute)"),
    _ldap("ldap_group_security_attribute", _parse_str,
          "Attribute making a group a security group; others are distribution groups"),
    _ldap("ldap_group_security_attribute_type", _choice("boolean", "ads"),
          "boolean (0/false/absent = distribution) or ads (groupType's security bit)"),
    _ldap("ldap_sendas_attribute", _parse_str,
          "Attribute listing the users and groups that may send as the entry"),
    _ldap("ldap_sendas_attribute_type", _DN_TEXT, "dn or text"),
    _ldap("ldap_sendas_relation_attribute", _parse_optional_str,
          "Attribute that text send-as values name (empty = the unique attribute)"),
    _ldap("ldap_addressbook_hide_attribute", _parse_str,
          "Attribute hiding an entry from listings (it still receives mail)"),
    _ldap("ldap_quotaoverride_attribute", _parse_str,
          "Attribute saying the entry's own quotas replace the defaults"),
    _ldap("ldap_warnquota_attribute", _parse_str, "Attribute of the warning quota"),
    _ldap("ldap_softquota_attribute", _parse_str, "Attribute of the soft quota"),
    _ldap("ldap_hardquota_attribute", _parse_str, "Attribute of the hard quota"),
    _ldap("ldap_quota_multiplier", _parse_positive,
          "Bytes in one unit of the quota attributes"),
    _ldap("ldap_enabled_features_attribute", _parse_str,
          "Attribute listing the features enabled for the user"),
    _ldap("ldap_disabled_features_attribute", _parse_str,
          "Attribute listing the features disabled for the user"),
    Setting("disabled_features", _parse_features,
            "Features off for users that have them neither enabled nor disabled (Kopano's "
            "imap pop3 mobile outlook webapp; space- or comma-separated)"),
    Setting("createuser_script", _parse_command,
            "Program run (KOPANO_USER in its environment) when a user is created (empty = none)"),
    Setting("deleteuser_script", _parse_command,
            "Program run (KOPANO_USER in its environment) when a user is deleted (empty = none)"),
    Setting("creategroup_script", _parse_command,
            "Program run (KOPANO_GROUP in its environment) when a group is created "
            "(empty = none)"),
    Setting("deletegroup_script", _parse_command,
            "Program run (KOPANO_GROUP in its environment) when a group is deleted "
            "(empty = none)"),
    Setting("script_timeout", _parse_positive_duration,
            "A user or group event script still running after this is killed"),
    Setting("mail_store", _parse_mail_store,
            "Where users' mail goes: db (the store), maildir (maildir_path), lmtp (store_lmtp)"),
    Setting("maildir_path", _parse_str,
            "Maildir of a user with mail_store = maildir (%u user name, %d domain, %% a %)"),
    Setting("store_lmtp", _parse_lmtp_address,
            "LMTP server (host:port or unix:/path) users' mail is handed to, mail_store = lmtp"),
    Setting("lmtp_listen", _parse_listen,
            "Comma-separated host:port or unix:/path addresses for LMTP"),
    Setting("lmtp_socket_mode", _parse_mode,
            "Permissions of unix: LMTP sockets (octal)", show=show_mode),
    Setting("lmtp_socket_user", _account(user_id),
            "Owner of unix: LMTP sockets, a name or uid (empty = the server's own)"),
    Setting("lmtp_socket_group", _account(group_id),
            "Group of unix: LMTP sockets, a name or gid, e.g. postfix (empty = the server's own)"),
    Setting("http_listen", _parse_listen_optional,
            "Comma-separated host:port or unix:/path addresses for HTTP (empty = no HTTP)"),
    Setting("public_url", _parse_url,
            "Base of every link the engine prints or mails (empty = http:// + first http_listen)"),
    Setting("max_message_size", parse_size, "Largest message accepted (SIZE)"),
    Setting("max_recipients", _parse_positive, "Most recipients accepted for one message"),
    Setting("max_sessions", _parse_positive,
            "Most concurrent LMTP sessions (all worker processes together)"),
    Setting("workers", _parse_workers,
            "LMTP server processes sharing the listeners; auto or 0 = one per CPU"),
    Setting("session_timeout", parse_duration, "Idle LMTP session timeout"),
    Setting("delivery_batch_size", _parse_positive,
            "Most deliveries committed together in one group commit"),
    Setting("dedupe_window", parse_duration,
            "Same Message-ID to the same mailbox within this window is stored once (0 disables)"),
    Setting("quota_warning", parse_size, "Default store size that logs a warning (0 = none)"),
    Setting("quota_soft", parse_size,
            "Default soft quota: over it deliveries are logged (0 = none)"),
    Setting("quota_hard", parse_size,
            "Default hard quota: over it deliveries fail 552 (0 = none)"),
    Setting("max_occurrences", _parse_positive,
            "Most occurrences of one meeting expanded inside the booking window"),
    Setting("smarthost", _parse_str, "host:port that outbound mail is relayed to"),
    Setting("smarthost_starttls", _parse_bool, "Use STARTTLS with the smarthost"),
    Setting("smarthost_user", _parse_optional_str,
            "AUTH user for the smarthost (empty = none)"),
    Setting("smarthost_password", _parse_optional_str, "AUTH password for the smarthost",
            secret=True),
    Setting("smarthost_timeout", parse_duration, "Timeout of one SMTP conversation"),
    Setting("queue_lifetime", parse_duration,
            "How long a temporarily failing outbound message is retried"),
    Setting("queue_keep_sent", parse_duration,
            "How long sent outbound messages stay listed before the hourly upkeep prunes them"),
    Setting("oof_interval", parse_duration,
            "One out-of-office reply per sender per mailbox within this interval"),
    Setting("oof_require_explicit_recipient", _parse_bool,
            "Only auto-reply when one of the user's addresses is in To or Cc"),
    Setting("log_level", _parse_str, "Logging level (DEBUG, INFO, WARNING, ERROR)"),
    Setting("log_format", _choice("text", "json"),
            "Log lines as text or json (one JSON object a line)"),
    Setting("log_target", _choice("stderr", "syslog"),
            "Where logs go: stderr (what journald collects) or syslog (/dev/log, facility mail)"),
)

_BY_NAME = {s.name: s for s in SCHEMA}


def _cpu_quota(path: str = "/sys/fs/cgroup/cpu.max") -> int | None:
    """CPUs a cgroup v2 quota allows ("200000 100000" is 2), rounded up; None if unlimited."""
    try:
        with open(path) as fh:
            quota, period = fh.read().split()[:2]
        return None if quota == "max" else -(-int(quota) // int(period))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Settings:
    home: str = ""
    database_url: str = ""
    store_group: str = ""
    hostname: str = "localhost"
    default_domain: str = "localhost"
    default_timezone: str = "UTC"
    trusted_authserv_ids: tuple[str, ...] = ()
    user_plugin: str = "db"
    ldap_uri: tuple[str, ...] = ()
    ldap_starttls: bool = False
    ldap_bind_user: str = ""
    ldap_bind_passwd: str = ""
    ldap_search_base: str = ""
    ldap_network_timeout: int = 30
    ldap_page_size: int = 1000
    ldap_server_type: str = "openldap"
    ldap_cache_timeout: int = 300
    ldap_object_type_attribute: str = "objectClass"
    ldap_user_type_attribute_value: str = "posixAccount"
    ldap_group_type_attribute_value: str = "posixGroup"
    ldap_user_search_filter: str = ""
    ldap_group_search_filter: str = ""
    ldap_user_unique_attribute: str = "uidNumber"
    ldap_user_unique_attribute_type: str = "text"
    ldap_group_unique_attribute: str = "gidNumber"
    ldap_group_unique_attribute_type: str = "text"
    ldap_loginname_attribute: str = "uid"
    ldap_fullname_attribute: str = "cn"
    ldap_emailaddress_attribute: str = "mail"
    ldap_emailaliases_attribute: str = "kopanoAliases"
    ldap_isadmin_attribute: str = "kopanoAdmin"
    ldap_nonactive_attribute: str = "kopanoSharedStoreOnly"
    ldap_resource_type_attribute: str = "kopanoResourceType"
    ldap_resource_capacity_attribute: str = "kopanoResourceCapacity"
    ldap_groupname_attribute: str = "cn"
    ldap_groupmembers_attribute: str = "memberUid"
    ldap_groupmembers_attribute_type: str = "text"
    ldap_groupmembers_relation_attribute: str = "uid"
    ldap_group_security_attribute: str = "kopanoSecurityGroup"
    ldap_group_security_attribute_type: str = "boolean"
    ldap_sendas_attribute: str = "kopanoSendAsPrivilege"
    ldap_sendas_attribute_type: str = "text"
    ldap_sendas_relation_attribute: str = ""
    ldap_addressbook_hide_attribute: str = "kopanoHidden"
    ldap_quotaoverride_attribute: str = "kopanoQuotaOverride"
    ldap_warnquota_attribute: str = "kopanoQuotaWarn"
    ldap_softquota_attribute: str = "kopanoQuotaSoft"
    ldap_hardquota_attribute: str = "kopanoQuotaHard"
    ldap_quota_multiplier: int = 1
    ldap_enabled_features_attribute: str = "kopanoEnabledFeatures"
    ldap_disabled_features_attribute: str = "kopanoDisabledFeatures"
    disabled_features: tuple[str, ...] = features.DEFAULT_DISABLED
    createuser_script: str = ""
    deleteuser_script: str = ""
    creategroup_script: str = ""
    deletegroup_script: str = ""
    script_timeout: int = 30
    mail_store: str = "db"
    maildir_path: str = "var/mail/%u/Maildir"
    store_lmtp: str = ""
    lmtp_listen: tuple[str, ...] = ("127.0.0.1:2003",)
    lmtp_socket_mode: int = 0o660
    lmtp_socket_user: str = ""
    lmtp_socket_group: str = ""
    http_listen: tuple[str, ...] = ("127.0.0.1:8080",)
    public_url: str = ""
    max_message_size: int = 50 * 1024 * 1024
    max_recipients: int = 1000
    max_sessions: int = 100
    workers: int = 0
    session_timeout: int = 300
    delivery_batch_size: int = 64
    dedupe_window: int = 86400
    quota_warning: int = 0
    quota_soft: int = 0
    quota_hard: int = 0
    max_occurrences: int = 1000
    smarthost: str = "127.0.0.1:25"
    smarthost_starttls: bool = False
    smarthost_user: str = ""
    smarthost_password: str = ""
    smarthost_timeout: int = 30
    queue_lifetime: int = 5 * 86400
    queue_keep_sent: int = 7 * 86400
    oof_interval: int = 86400
    oof_require_explicit_recipient: bool = True
    log_level: str = "INFO"
    log_format: str = "text"
    log_target: str = "stderr"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Absolute, so that every command opens the same store from whatever directory it
        # is run in; "" is the default (load_settings puts the configuration file's
        # directory in first).
        home = os.path.abspath(self.home or "var")
        object.__setattr__(self, "home", home)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{home}/{STORE_FILE}")

    @property
    def worker_count(self) -> int:
        if self.workers:
            return self.workers
        # The CPUs this process may run on (a container's cpuset), not the host's count,
        # and no more than a CPU quota (cgroup v2 cpu.max) allows.
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
        return max(1, min(cpus, _cpu_quota() or cpus))

    @property
    def public_base(self) -> str:
        """``public_url``, or ``http://`` + the first TCP ``http_listen`` address."""
        if self.public_url:
            return self.public_url
        tcp = [a for a in self.http_listen if not a.startswith("unix:")]
        return "http://" + (tcp[0] if tcp else "localhost")

    def replace(self, **changes: Any) -> "Settings":
        """A copy with ``changes`` applied (tests and benchmarks tune settings this way)."""
        values = {s.name: getattr(self, s.name) for s in SCHEMA}
        values.update(changes)
        return Settings(**values, sources=dict(self.sources))



# Each setting's default, written once: on its Settings field (the schema reads it here).
_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(Settings) if f.name != "sources"}


def _coerce(setting: Setting, raw: Any, origin: str) -> Any:
    try:
        return setting.parse(raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid value for {setting.name} (from {origin}): {exc}") from None


def _read_toml(path: str) -> dict[str, Any]:
    # Imported here: serve's supervisor and workers get their settings read already
    # (delivery/workers.py), and a module the supervisor imports is resident in every worker
    # it forks (tomllib: about 0.5 MB each).
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    section = data.get("mr_engine", data)
    unknown = sorted(set(section) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]} in {path}")
    return section


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Merge defaults < TOML file < environment < ``overrides`` (command-line flags)."""
    environ = os.environ if environ is None else environ
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    path = config_file_in_use(environ, config_file)
    file_values = _read_toml(path) if path else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SCHEMA:
        if setting.name in overrides:
            origin, raw = "command line", overrides[setting.name]
        elif setting.env in environ:
            origin, raw = f"environment {setting.env}", environ[setting.env]
        elif setting.name in file_values:
            origin, raw = f"file {path}", file_values[setting.name]
        else:
            values[setting.name] = setting.default
            sources[setting.name] = "default"
            continue
        values[setting.name] = _coerce(setting, raw, origin)
        sources[setting.name] = origin
    _place_home(values, sources, path)
    _place_server_type_defaults(values, sources)
    settings = Settings(**values, sources=sources)
    check_mail_store(settings)
    check_user_plugin(settings)
    return settings


def config_file_in_use(environ: Mapping[str, str], config_file: str | None = None) -> str | None:
    """The named file (``--config``, else ``MR_ENGINE_CONFIG``), which replaces the system
    file; else the system file when there is one; else None."""
    named = config_file or environ.get(CONFIG_ENV)
    if named:
        return named
    system = environ.get(SYSTEM_CONFIG_ENV, SYSTEM_CONFIG)
    return system if os.path.exists(system) else None


def _place_server_type_defaults(values: dict[str, Any], sources: dict[str, str]) -> None:
    """The Active Directory defaults of the ldap_* keys nobody set, for ``ad``."""
    if values["ldap_server_type"] != "ad":
        return
    for name, value in LDAP_AD_DEFAULTS.items():
        if sources[name] == "default":
            values[name], sources[name] = value, "default for ldap_server_type = ad"


def _place_home(values: dict[str, Any], sources: dict[str, str], path: str | None) -> None:
    """``home`` made absolute: by default the configuration file's directory (else ./var,
    as Settings does); one written in the file relative to that file's directory."""
    folder = os.path.dirname(os.path.abspath(path)) if path else None
    if sources["home"] == "default":
        values["home"] = folder or ""
        sources["home"] = (f"default: the directory of {path}" if folder
                           else "default: ./var in the working directory")
    elif folder and sources["home"] == f"file {path}":
        values["home"] = os.path.join(folder, values["home"])
    if sources["database_url"] == "default":
        sources["database_url"] = f"default: {STORE_FILE} in home"


def describe(settings: Settings) -> list[dict[str, Any]]:
    """Rows for ``mr-engine config``: name, value, source, help (secrets masked)."""
    rows = []
    for setting in SCHEMA:
        value = getattr(settings, setting.name)
        if isinstance(value, tuple):
            value = ",".join(value)
        if setting.show is not None:
            value = setting.show(value)
        if setting.secret and value:
            value = "********"
        rows.append({"name": setting.name, "value": value,
                     "source": settings.sources.get(setting.name, "default"),
                     "help": setting.help})
    return rows
