"""``kopano-cli``: manage users, resources, groups and stores, with Kopano's flag names.

The flags pick one *mode* (``--create``, ``--list-users``, ``--user NAME`` with or without
changes, ...). Every other flag given must belong to that mode, else it is a usage error
(exit 2) rather than being silently ignored. One invocation is one database transaction:
on any error nothing is written. Output is printed only after the commit, so a success
message always describes a durable change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from mr_engine import directory, stores
from mr_engine.config import Settings
from mr_engine.directory import RESOURCE_TYPES
from mr_engine.models import Mailbox
from mr_engine.outofoffice import get_oof

from . import kopano_cli_format as fmt
from .common import (add_config_flags, fail, iso, open_db, print_json,
                     run_guarded, settings_from, utcnow)


class UsageError(Exception):
    """Flags that do not make a command; reported by argparse (exit 2)."""


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


TARGETS = (
    _value("--user", "NAME", "the user or resource to show, create, change or delete"),
    _value("--group", "NAME", "the group to show, create, change or delete"),
)

ACTIONS = (
    _switch("--create", "create the --user or --group"),
    _switch("--delete", "delete the --user (its store becomes an orphan) or the --group"),
    _switch("--list-users", "list all users"),
    _switch("--list-groups", "list all groups with their members"),
    _switch("--list-orphans", "list stores without a user and users without a store"),
    _switch("--create-store", "create the store of --user, or the public store"),
    _value("--hook-store", "GUID", "hook an orphan store to --user, or as the public store"),
    _switch("--unhook-store", "make the store of --user an orphan"),
    _value("--remove-store", "GUID", "remove an orphan store (soft delete)"),
    _switch("--purge-softdelete", "purge soft-deleted stores for good"),
    _value("--add-sendas", "NAME", "let NAME send as --user"),
    _value("--remove-sendas", "NAME", "no longer let NAME send as --user"),
    _value("--add-user", "NAME", "add user NAME to --group"),
    _value("--remove-user", "NAME", "remove user NAME from --group"),
    _value("--password", "PASSWORD", "the user's password"),
    _switch("--password-prompt", "ask for the password (or read a line from stdin)"),
    _value("--name", "NAME", "rename the user"),
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
    Flag(("--mr-accept",), "mr_accept", "(resource) auto-accept meeting requests: yes/no",
         {"metavar": "yes|no", "type": yes_no}),
    Flag(("--mr-decline-conflict",), "mr_decline_conflict",
         "(resource) decline meeting requests for conflicting times: yes/no",
         {"metavar": "yes|no", "type": yes_no}),
    Flag(("--mr-decline-recurring",), "mr_decline_recurring",
         "(resource) decline recurring meeting requests: yes/no",
         {"metavar": "yes|no", "type": yes_no}),
    Flag(("--resource-type",), "resource_type", "room, equipment or none (a user)",
         {"choices": RESOURCE_TYPES}),
    Flag(("--resource-capacity",), "resource_capacity", "(resource) how many at once, >= 1",
         {"metavar": "N", "type": int_in(1)}),
    Flag(("--mr-booking-window",), "mr_booking_window_days",
         "(resource) days ahead that may be booked, >= 1", {"metavar": "DAYS", "type": int_in(1)}),
    Flag(("--mr-max-duration",), "mr_max_duration",
         "(resource) longest meeting in minutes, 0 = no limit",
         {"metavar": "MINUTES", "type": int_in(0)}),
    Flag(("--mr-max-conflict-instances",), "mr_max_conflict_instances",
         "(resource) conflicting instances of a recurring meeting tolerated",
         {"metavar": "N", "type": int_in(0)}),
    Flag(("--mr-conflict-percentage",), "mr_conflict_percentage",
         "(resource) percentage of conflicting instances tolerated, 0..100",
         {"metavar": "PERCENT", "type": int_in(0, 100)}),
    Flag(("--quota-warn", "--qw"), "quota_warning", "warning quota in MB, 0 = unlimited",
         {"metavar": "MB", "type": megabytes}),
    Flag(("--quota-soft", "--qs"), "quota_soft", "soft quota in MB, 0 = unlimited",
         {"metavar": "MB", "type": megabytes}),
    Flag(("--quota-hard", "--qh"), "quota_hard", "hard quota in MB, 0 = unlimited",
         {"metavar": "MB", "type": megabytes}),
)

JSON = _switch("--json", "print listings and details as JSON")
ALL_FLAGS = (JSON, *TARGETS, *ACTIONS, *USER_FIELDS)
FLAG_NAMES = {flag.dest: flag.names[0] for flag in ALL_FLAGS}
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
    for title, flags in (("output", (JSON,)), ("what to work on", TARGETS), ("actions", ACTIONS),
                         ("user and resource settings", USER_FIELDS)):
        group = parser.add_argument_group(title)
        for flag in flags:
            group.add_argument(*flag.names, dest=flag.dest, help=flag.help, **flag.options)
    return parser


def given(args: argparse.Namespace, dest: str) -> bool:
    # Not a truth test: --active no, --qh 0 and --admin-level 0 are given values.
    return getattr(args, dest) is not None


# --- what the modes do ---------------------------------------------------------------------

@dataclass(frozen=True)
class Context:
    settings: Settings
    now: dt.datetime


def out_of_office(session: Session, mailbox: Mailbox) -> dict[str, Any]:
    """Whether out-of-office is switched on, and its period (open bounds are null)."""
    state = get_oof(session, mailbox)
    return {"enabled": state.enabled, "from": iso(state.start), "until": iso(state.until)}


def _quota(mailbox: Mailbox, settings: Settings, key: str) -> int:
    """The user's own quota wins; without one the configured default applies."""
    own = getattr(mailbox, key)
    return own if own is not None else getattr(settings, key)


def user_details(session: Session, mailbox: Mailbox, settings: Settings) -> dict[str, Any]:
    """Everything ``--user NAME`` shows, in Kopano's order, as plain JSON-ready data."""
    store = stores.store_of(session, mailbox)
    return {
        "name": mailbox.name,
        "fullname": mailbox.fullname,
        "email": mailbox.email,
        "active": bool(mailbox.active),
        "admin_level": mailbox.admin_level,
        "store": store.guid if store else None,
        "store_size": store.size if store else 0,
        "sendas": directory.sendas_names(session, mailbox),
        "mr_accept": bool(mailbox.mr_accept),
        "mr_decline_conflict": bool(mailbox.mr_decline_conflict),
        "mr_decline_recurring": bool(mailbox.mr_decline_recurring),
        "resource_type": mailbox.resource_type,
        "resource_capacity": mailbox.resource_capacity,
        "mr_booking_window": mailbox.mr_booking_window_days,
        "mr_max_duration": mailbox.mr_max_duration,
        "mr_max_conflict_instances": mailbox.mr_max_conflict_instances,
        "mr_conflict_percentage": mailbox.mr_conflict_percentage,
        "out_of_office": out_of_office(session, mailbox),
        **{key: _quota(mailbox, settings, key)
           for key in ("quota_warning", "quota_soft", "quota_hard")},
        "groups": directory.groups_of(session, mailbox),
    }


def _field_changes(args: argparse.Namespace) -> dict[str, Any]:
    return {dest: getattr(args, dest) for dest in FIELD_DESTS if given(args, dest)}


def show_user(session: Session, args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    return user_details(session, directory.get_user(session, args.user), ctx.settings)


def create_user(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    changes = _field_changes(args)
    basics = {key: changes.pop(key) for key in ("email", "fullname", "active", "admin_level")
              if key in changes}
    mailbox = directory.create_user(session, name=args.user, password=args.password,
                                    now=ctx.now, **basics)
    directory.update_user(session, mailbox, **changes)
    message = f"User created: {mailbox.name}"
    if args.create_store:
        message += f"\nStore created: {stores.create_store(session, mailbox, ctx.now).guid}"
    return message


def update_user(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    mailbox = directory.get_user(session, args.user)
    directory.update_user(session, mailbox, name=args.name, password=args.password,
                          **_field_changes(args))
    for dest, service in (("add_sendas", directory.add_sendas),
                          ("remove_sendas", directory.remove_sendas)):
        if given(args, dest):
            service(session, mailbox, directory.get_user(session, getattr(args, dest)))
    return f"User updated: {mailbox.name}"


def delete_user(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    mailbox = directory.get_user(session, args.user)
    store = stores.store_of(session, mailbox)
    # Kopano keeps a deleted user's store as an orphan, to be hooked or removed later.
    stores.orphan_store_of(session, mailbox)
    directory.delete_user(session, mailbox)
    kept = f" (store {store.guid} is now an orphan)" if store else ""
    return f"User deleted: {args.user}{kept}"


def list_users(session: Session, args: argparse.Namespace, ctx: Context) -> list[dict]:
    return [{"name": m.name, "fullname": m.fullname, "email": m.email, "active": m.active,
             "admin_level": m.admin_level, "resource_type": m.resource_type}
            for m in directory.list_users(session)]


def _group_info(info: directory.GroupInfo) -> dict[str, Any]:
    return {"name": info.name, "email": info.email, "members": info.members}


def list_groups(session: Session, args: argparse.Namespace, ctx: Context) -> list[dict]:
    return [_group_info(info) for info in directory.list_groups(session)]


def show_group(session: Session, args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    if args.group == directory.EVERYONE:
        return _group_info(directory.list_groups(session)[0])
    group = directory.get_group(session, args.group)
    members = [m.name for m in directory.group_members(session, group)]
    return _group_info(directory.GroupInfo(group.name, group.email, members))


def create_group(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    directory.create_group(session, args.group, args.email)
    return f"Group created: {args.group}"


def update_group(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    group = directory.get_group(session, args.group)
    if args.email is not None:
        directory.set_group_email(session, group, args.email)
    for dest, service in (("add_user", directory.add_member),
                          ("remove_user", directory.remove_member)):
        if given(args, dest):
            service(session, group, directory.get_user(session, getattr(args, dest)))
    return f"Group updated: {args.group}"


def delete_group(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    directory.delete_group(session, directory.get_group(session, args.group))
    return f"Group deleted: {args.group}"


def list_orphans(session: Session, args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    orphans = stores.list_orphans(session)
    return {"stores": [{"guid": s.guid, "owner": s.owner_name, "size": s.size}
                       for s in orphans.stores],
            "users": orphans.users_without_store}


def create_store(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    if args.user is None:
        return f"Public store created: {stores.create_public_store(session, ctx.now).guid}"
    mailbox = directory.get_user(session, args.user)
    return f"Store created: {stores.create_store(session, mailbox, ctx.now).guid}"


def hook_store(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    mailbox = directory.get_user(session, args.user) if args.user is not None else None
    store = stores.hook_store(session, args.hook_store, mailbox)
    target = f"user {mailbox.name}" if mailbox else "the public store"
    return f"Store hooked: {store.guid} as {target}"


def unhook_store(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    mailbox = directory.get_user(session, args.user)
    store = stores.store_of(session, mailbox)
    if store is None:
        raise directory.NotFound(f"user {mailbox.name!r} has no store")
    stores.orphan_store_of(session, mailbox)
    return f"Store unhooked: {store.guid} (was user {mailbox.name})"


def remove_store(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    return f"Store removed: {stores.remove_store(session, args.remove_store, ctx.now).guid}"


def purge_softdelete(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    return f"Soft-deleted stores purged: {stores.purge_softdeleted(session)}"


# --- choosing the mode ---------------------------------------------------------------------

@dataclass(frozen=True)
class Mode:
    usage: str                                   # names the mode in usage errors
    run: Callable[[Session, argparse.Namespace, Context], Any]
    allowed: frozenset[str]                      # dests that may be given with it
    render: Callable[[Any], str] = str           # text output (``--json`` prints the data)
    readonly: bool = False
    requires: tuple[str, ...] = ()


def _mode(usage: str, run: Callable, allowed: set[str] | frozenset[str], **kw: Any) -> Mode:
    return Mode(usage, run, frozenset(allowed), **kw)


def _listing(usage: str, run: Callable, render: Callable[[Any], str]) -> Mode:
    return _mode(usage, run, {"json"}, render=render, readonly=True)


USER_UPDATES = {"name", *PASSWORD_DESTS, "add_sendas", "remove_sendas", *FIELD_DESTS}
GROUP_UPDATES = {"email", "add_user", "remove_user"}

CREATE_USER = _mode("--create --user", create_user,
                    {"user", *PASSWORD_DESTS, "create_store", *FIELD_DESTS}, requires=("email",))
CREATE_GROUP = _mode("--create --group", create_group, {"group", "email"})
DELETE_USER = _mode("--delete --user", delete_user, {"user"})
DELETE_GROUP = _mode("--delete --group", delete_group, {"group"})
SHOW_USER = _mode("--user NAME (details)", show_user, {"user", "json"},
                  render=fmt.user_details, readonly=True)
UPDATE_USER = _mode("--user NAME with changes", update_user, {"user", *USER_UPDATES})
SHOW_GROUP = _mode("--group NAME (details)", show_group, {"group", "json"},
                   render=fmt.group_details, readonly=True)
UPDATE_GROUP = _mode("--group NAME with changes", update_group, {"group", *GROUP_UPDATES})

# Flags that name a mode by themselves, in order of precedence.
SIMPLE_MODES = (
    ("list_users", _listing("--list-users", list_users, fmt.users_table)),
    ("list_groups", _listing("--list-groups", list_groups, fmt.groups_table)),
    ("list_orphans", _listing("--list-orphans", list_orphans, fmt.orphans)),
    ("purge_softdelete", _mode("--purge-softdelete", purge_softdelete, set())),
    ("remove_store", _mode("--remove-store", remove_store, set())),
    ("hook_store", _mode("--hook-store", hook_store, {"user"})),
    ("unhook_store", _mode("--unhook-store", unhook_store, {"user"}, requires=("user",))),
    ("create_store", _mode("--create-store", create_store, {"user"})),
)


def _by_target(args: argparse.Namespace, flag: str, for_user: Mode, for_group: Mode) -> Mode:
    if (args.user is None) == (args.group is None):
        raise UsageError(f"{flag} needs either --user NAME or --group NAME")
    return for_user if args.user is not None else for_group


def _pick_mode(args: argparse.Namespace) -> tuple[str, Mode]:
    if args.create:
        return "create", _by_target(args, "--create", CREATE_USER, CREATE_GROUP)
    if args.delete:
        return "delete", _by_target(args, "--delete", DELETE_USER, DELETE_GROUP)
    for dest, mode in SIMPLE_MODES:
        if given(args, dest):
            return dest, mode
    if args.user is not None:
        changing = any(given(args, dest) for dest in USER_UPDATES)
        return "user", UPDATE_USER if changing else SHOW_USER
    if args.group is not None:
        changing = any(given(args, dest) for dest in GROUP_UPDATES)
        return "group", UPDATE_GROUP if changing else SHOW_GROUP
    raise UsageError("nothing to do: give --user, --group, --create, --list-users, ...")


def choose_mode(args: argparse.Namespace) -> Mode:
    """The mode the flags ask for; any flag the mode would ignore is a usage error."""
    own, mode = _pick_mode(args)
    for dest, flag in FLAG_NAMES.items():
        if dest != own and given(args, dest) and dest not in mode.allowed:
            raise UsageError(f"{flag} cannot be used with {mode.usage}")
    for dest in mode.requires:
        if not given(args, dest):
            raise UsageError(f"{mode.usage} needs {FLAG_NAMES[dest]}")
    if args.password is not None and args.password_prompt:
        raise UsageError("give either --password or --password-prompt, not both")
    return mode


def read_password() -> str:
    """Ask twice on a terminal; otherwise take one line from stdin (scripts, pipes)."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise UsageError("the passwords do not match")
    if not password:
        raise UsageError("the password is empty")
    return password


# --- running -------------------------------------------------------------------------------

def execute(mode: Mode, args: argparse.Namespace) -> int:
    settings = settings_from(args)
    db = None
    try:
        db = open_db(settings)
        with (db.read() if mode.readonly else db.write()) as session:
            result = mode.run(session, args, Context(settings, utcnow()))
    except IntegrityError as exc:
        # A concurrent change can still trip a unique constraint after our own checks.
        return fail(f"the change conflicts with existing data: {exc.orig}")
    except SQLAlchemyError as exc:
        return fail(f"database error: {exc}")
    finally:
        if db is not None:
            db.dispose()
    # Only now, after the commit, is there something to report.
    if args.json:
        print_json(result)
    else:
        print(mode.render(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        mode = choose_mode(args)
        if args.password_prompt:
            args.password = read_password()
    except UsageError as exc:
        parser.error(str(exc))
    return run_guarded(lambda: execute(mode, args))


if __name__ == "__main__":
    sys.exit(main())
