"""The flags of ``kopano-cli``: their value types, the tables of flags, and the parser.

Kept apart from the modes (``kopano_cli.py``) so that the tables read as Kopano's usage.
"""

from __future__ import annotations

import argparse
import sys
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from mr_engine.core.resource_settings import SETTINGS, Setting

from .common import UsageError, add_config_flags


# --- flag values ---------------------------------------------------------------------------

def yes_no(text: str) -> bool:
    answer = {"yes": True, "y": True, "true": True, "1": True,
              "no": False, "n": False, "false": False, "0": False}.get(text.strip().lower())
    if answer is None:
        raise argparse.ArgumentTypeError(f"expected yes or no, got {text!r}")
    return answer


def email_address(text: str) -> str:
    local, at, domain = text.strip().rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in text.strip()):
        raise argparse.ArgumentTypeError(f"not an email address: {text!r}")
    return text.strip()


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer within [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value
    return parse


def time_zone(text: str) -> str:
    """An IANA zone name; "" (no zone of its own) clears it."""
    name = text.strip()
    if not name:
        return ""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown IANA time zone {name!r}") from None
    return name


def text_file(text: str) -> str:
    """The text of a file, of stdin for ``-``; ``none`` is no text."""
    if text.strip().lower() == "none":
        return ""
    try:
        raw = sys.stdin.buffer.read() if text == "-" else Path(text).read_bytes()
        return raw.decode("utf-8").replace("\r\n", "\n").strip()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"{text} is not UTF-8 text") from None


def checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a setting's parser (its ValueError says what is wrong)."""
    def read(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return read


def megabytes(text: str) -> int:
    """Quota flags take MB, as in Kopano; the store keeps bytes."""
    return int_in(0)(text) * 1024 * 1024


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]
    dest: str
    help: str
    options: Mapping[str, Any] = field(default_factory=dict)  # more add_argument keywords


def _switch(name: str, help: str) -> Flag:
    # Default None, not False, so that "given" is simply "not None" for every flag.
    return Flag((name,), name[2:].replace("-", "_"), help,
                {"action": "store_true", "default": None})


def _value(name: str, metavar: str, help: str) -> Flag:
    return Flag((name,), name[2:].replace("-", "_"), help, {"metavar": metavar})


def _setting_value(declared: Setting) -> dict[str, Any]:
    """How a resource setting's flag reads its value, from the setting's type."""
    if declared.value_type is bool:
        return {"metavar": "yes|no", "type": yes_no}
    if declared.from_file:
        return {"metavar": declared.metavar, "type": text_file}
    if declared.parse is not None:
        return {"metavar": declared.metavar, "type": checked(declared.parse)}
    if declared.choices:
        return {"choices": declared.choices}
    if declared.value_type is int:
        return {"metavar": declared.metavar, "type": int_in(declared.minimum, declared.maximum)}
    return {"metavar": declared.metavar}


def _setting_flag(declared: Setting) -> Flag:
    """A resource setting's flag (``core.resource_settings``); its dest is the column."""
    return Flag((declared.flag,), declared.column, declared.help, _setting_value(declared))


def _names(name: str, metavar: str, help: str) -> Flag:
    """A flag that may be given more than once, each a name or a comma list (Kopano's)."""
    return Flag((name,), name[2:].replace("-", "_"), help,
                {"metavar": metavar, "action": "append"})


TARGETS = (
    Flag(("-u", "--user"), "user",
         "the user or resource to show, create, change or delete (repeatable: each of them)",
         {"metavar": "NAME", "action": "append"}),
    Flag(("-g", "--group"), "group",
         "the group to show, create, change or delete (repeatable: each of them)",
         {"metavar": "NAME", "action": "append"}),
)

# Bare --purge-softdelete: every soft-deleted store; with N, those deleted N days ago or more.
PURGE_ALL = -1  # not a string: argparse would run it through the type

ACTIONS = (
    _switch("--create", "create the --user or --group"),
    _switch("--delete", "delete the --user (its store becomes an orphan) or the --group"),
    _switch("--list-users", "list all users"),
    _switch("--show-hidden", "with --list-users: hidden users too (kopanoHidden)"),
    _switch("--list-groups", "list all groups with their members"),
    _switch("--list-orphans", "list stores without a user and users without a store"),
    _switch("--list-stores", "list all stores"),
    _switch("--user-count", "count the users, active and not, rooms and equipment"),
    _switch("--sync", "synchronise users and groups with the user plugin's source"),
    _switch("--create-store", "create the store of --user, or the public store"),
    _value("--hook-store", "GUID", "hook an orphan store to --user, or as the public store"),
    _switch("--unhook-store", "make the store of --user, or the public store, an orphan"),
    _value("--remove-store", "GUID", "remove an orphan store (soft delete)"),
    Flag(("--purge-softdelete",), "purge_softdelete",
         "purge stores soft-deleted more than DAYS days ago for good (no DAYS: all of them)",
         {"metavar": "DAYS", "nargs": "?", "const": PURGE_ALL, "type": int_in(0)}),
    _names("--add-sendas", "NAME", "let NAME send as --user (repeatable)"),
    _names("--remove-sendas", "NAME", "no longer let NAME send as --user (repeatable)"),
    _names("--add-feature", "FEATURE", "give --user a feature (imap, pop3, ...; repeatable)"),
    _names("--remove-feature", "FEATURE", "take a feature from --user (repeatable)"),
    Flag(("--mr-add-delegate",), "mr_add_delegate",
         "(resource) let user NAME approve requests for --user (repeatable)",
         {"metavar": "NAME", "action": "append"}),
    Flag(("--mr-remove-delegate",), "mr_remove_delegate",
         "(resource) no longer let user NAME approve requests for --user (repeatable)",
         {"metavar": "NAME", "action": "append"}),
    _names("--add-user", "NAME", "add user (or group) NAME to --group (repeatable)"),
    _names("--remove-user", "NAME", "remove user (or group) NAME from --group (repeatable)"),
    Flag(("--mr-pool",), "mr_pool", "make --group a pool (its members must be resources): a "
         "meeting request to its address books one free member", {"metavar": "yes|no",
                                                                   "type": yes_no}),
    _value("--password", "PASSWORD", "the user's password"),
    _switch("--password-prompt", "ask for the password (or read a line from stdin)"),
    _value("--name", "NAME", "rename the user"),
    Flag(("--ooo",), "ooo", "out-of-office on or off (as kopano-set-oof -m 1|0)",
         {"metavar": "yes|no", "type": yes_no}),
    _switch("--ooo-clear", "clear the out-of-office subject, message and period"),
    _value("--ooo-subject", "TEXT", "subject of the out-of-office reply"),
    _value("--ooo-message", "FILE", "file with the out-of-office reply's text (- for stdin)"),
    _value("--ooo-from", '"YYYY-mm-dd HH:MM"', "out-of-office from, in the user's zone "
           "(infinite: no start)"),
    _value("--ooo-until", '"YYYY-mm-dd HH:MM"', "out-of-office until, in the user's zone "
           "(infinite: no end)"),
    Flag(("--calendar-token",), "calendar_token",
         "new: give --user's calendar feed a new secret link and print it; none: remove it",
         {"metavar": "new|none", "choices": ("new", "none")}),
)

# Columns of a user that flags set directly; dest is update_user's keyword.
USER_FIELDS = (
    _value("--fullname", "NAME", "full name"),
    Flag(("--email",), "email", "email address (of the user or the group)",
         {"metavar": "ADDRESS", "type": email_address}),
    Flag(("--active",), "active", "may log in: yes/no (inactive mailboxes still receive mail)",
         {"metavar": "yes|no", "type": yes_no}),
    Flag(("--admin-level",), "admin_level", "0 = user, 1 = admin, 2 = system admin",
         {"metavar": "0|1|2", "type": int_in(0, 2)}),
    Flag(("--timezone",), "timezone",
         "IANA time zone of the user or resource (working hours, floating times); "
         "'' = the default_timezone", {"metavar": "ZONE", "type": time_zone}),
    *(_setting_flag(declared) for declared in SETTINGS),
    Flag(("--quota-warn", "--qw"), "quota_warning", "warning quota in MB, 0 = unlimited",
         {"metavar": "MB", "type": megabytes}),
    Flag(("--quota-soft", "--qs"), "quota_soft", "soft quota in MB, 0 = unlimited",
         {"metavar": "MB", "type": megabytes}),
    Flag(("--quota-hard", "--qh"), "quota_hard", "hard quota in MB, 0 = unlimited",
         {"metavar": "MB", "type": megabytes}),
)

@dataclass(frozen=True)
class Alias:
    """Another tool's spelling of a setting: its flag, the flag it sets, and how."""

    flag: Flag
    target: str  # dest of the flag it stands for
    convert: Callable[[Any], Any]


# The real kopano-cli's inverse flags, and --admin for --admin-level.
ALIASES = (
    Alias(Flag(("--mr-accept-conflicts",), "mr_accept_conflicts",
               "(resource) accept conflicting requests: --mr-decline-conflict, inverted",
               {"metavar": "yes|no", "type": yes_no}), "mr_decline_conflict", lambda v: not v),
    Alias(Flag(("--mr-accept-recurring",), "mr_accept_recurring",
               "(resource) accept recurring requests: --mr-decline-recurring, inverted",
               {"metavar": "yes|no", "type": yes_no}), "mr_decline_recurring", lambda v: not v),
    Alias(Flag(("--admin",), "admin", "administrator: yes (--admin-level 1) or no (0)",
               {"metavar": "yes|no", "type": yes_no}), "admin_level", int),
)

JSON = _switch("--json", "print listings and details as JSON")
VERBOSE = _switch("--verbose", "say what a change did (without it, a change prints nothing)")
ALL_FLAGS = (JSON, VERBOSE, *TARGETS, *ACTIONS, *USER_FIELDS)
# The long names in messages: -u is --user there.
FLAG_NAMES = {flag.dest: flag.names[-1] for flag in ALL_FLAGS}
FIELD_DESTS = frozenset(flag.dest for flag in USER_FIELDS)
PASSWORD_DESTS = frozenset({"password", "password_prompt"})


DESCRIPTION = ("Manage users, resources, groups and stores of mr-engine, with the flags of "
               "Kopano's kopano-cli. Listings and details print JSON with --json.")


def build_parser() -> argparse.ArgumentParser:
    # No abbreviations: a mistyped flag must not silently become another action.
    parser = argparse.ArgumentParser(prog="kopano-cli", description=DESCRIPTION,
                                     usage="%(prog)s [--json] FLAGS... (see --help)",
                                     allow_abbrev=False)
    add_config_flags(parser)
    for title, flags in (("output", (JSON, VERBOSE)), ("what to work on", TARGETS),
                         ("actions", ACTIONS), ("user and resource settings", USER_FIELDS),
                         ("the real kopano-cli's spellings", [a.flag for a in ALIASES])):
        group = parser.add_argument_group(title)
        for flag in flags:
            group.add_argument(*flag.names, dest=flag.dest, help=flag.help, **flag.options)
    return parser


def given(args: argparse.Namespace, dest: str) -> bool:
    # Not a truth test: --active no, --qh 0 and --admin-level 0 are given values.
    return getattr(args, dest) is not None


def apply_aliases(args: argparse.Namespace) -> None:
    """Each alias given becomes the flag it stands for; both given must agree."""
    for alias in ALIASES:
        value = getattr(args, alias.flag.dest)
        if value is None:
            continue
        target = alias.convert(value)
        if given(args, alias.target) and getattr(args, alias.target) != target:
            raise UsageError(f"{alias.flag.names[0]} contradicts {FLAG_NAMES[alias.target]}")
        setattr(args, alias.target, target)
        setattr(args, alias.flag.dest, None)


def names(args: argparse.Namespace, dest: str) -> list[str]:
    """The names a repeatable flag was given, each occurrence possibly a comma list."""
    return [name.strip() for value in getattr(args, dest) or () for name in value.split(",")
            if name.strip()]
