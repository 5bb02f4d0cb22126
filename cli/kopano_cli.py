"""``kopano-cli``: manage users, resources, groups and stores, with Kopano's flag names.

The flags pick one *mode* (``--create``, ``--list-users``, ``--user NAME`` with or without
changes, ...). Every other flag given must belong to that mode, else it is a usage error
(exit 2) rather than being silently ignored. One invocation is one database transaction:
on any error nothing is written. Output is printed only after the commit, so a success
message always describes a durable change.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import getpass
import sys
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from mr_engine.services import availability
from mr_engine.services.meeting_requests import extend_and_queue
from mr_engine.store import directory, event_scripts
from mr_engine.store import stores
from mr_engine.clock import utcnow
from mr_engine.config import Settings
from mr_engine.store.directories import (Directory, DirectoryError, GroupInfo, NotFound,
                                         open_directory)
from mr_engine.store.models import Mailbox
from mr_engine.store.oof_state import get_oof, set_oof
from mr_engine.core import features, who_may_book
from mr_engine.core.printable import printable_lines
from mr_engine.core.resource_settings import SETTINGS

from . import kopano_cli_format as fmt
from .kopano_cli_format import Report
from .common import fail, iso, open_db, print_json, run_guarded, settings_from
from . import kopano_cli_stores as store_modes
from .kopano_cli_flags import (FIELD_DESTS, FLAG_NAMES, PASSWORD_DESTS, UsageError,
                               apply_aliases, build_parser, given, names)
from .oof_input import parse_time, read_message, user_zone


# --- what the modes do ---------------------------------------------------------------------

@dataclass(frozen=True)
class Context:
    settings: Settings
    now: dt.datetime
    # Every read of users and groups goes through it (user_plugin); the changes are the
    # db source's own functions (store.directory).
    source: Directory


def out_of_office(session: Session, mailbox: Mailbox) -> dict[str, Any]:
    """Whether out-of-office is switched on, and its period (open bounds are null)."""
    state = get_oof(session, mailbox)
    return {"enabled": state.enabled, "from": iso(state.start), "until": iso(state.until)}


def _quota(mailbox: Mailbox, settings: Settings, key: str) -> int:
    """The user's own quota wins; without one the configured default applies."""
    own = getattr(mailbox, key)
    return own if own is not None else getattr(settings, key)


def resource_details(mailbox: Mailbox) -> dict[str, Any]:
    """The resource settings under their JSON keys (``core.resource_settings``); a list
    setting as its entries."""
    return {s.json: _json_value(s.load(getattr(mailbox, s.column))) for s in SETTINGS}


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def user_details(session: Session, mailbox: Mailbox, settings: Settings,
                 source: Directory) -> dict[str, Any]:
    """Everything ``--user NAME`` shows, in Kopano's order, as plain JSON-ready data."""
    store = stores.store_of(session, mailbox)
    return {
        "name": mailbox.name,
        "fullname": mailbox.fullname,
        "email": mailbox.email,
        "active": bool(mailbox.active),
        "admin_level": mailbox.admin_level,
        "address_book": "hidden" if mailbox.hidden else "visible",  # kopanoHidden
        # Table 8.1 (§8.7): on or off for the user, the server's disabled_features applied.
        "features": features.effective(directory.user_features(mailbox),
                                       settings.disabled_features),
        "store": store.guid if store else None,
        "store_size": store.size if store else 0,
        "sendas": source.sendas_of(mailbox.email),
        "timezone": mailbox.timezone or settings.default_timezone,
        **resource_details(mailbox),
        "mr_delegates": [d.name for d in directory.delegates_of(session, mailbox)],
        "out_of_office": out_of_office(session, mailbox),
        # Kopano's "Quota overrides": the user has quota of its own, not the defaults.
        "quota_overrides": any(getattr(mailbox, key) is not None for key in QUOTAS),
        **{key: _quota(mailbox, settings, key) for key in QUOTAS},
        "groups": source.groups_of(mailbox.email),
        "calendar_feed": availability.feed_url(settings.public_base, mailbox),
    }


QUOTAS = ("quota_warning", "quota_soft", "quota_hard")


def _field_changes(args: argparse.Namespace) -> dict[str, Any]:
    return {dest: getattr(args, dest) for dest in FIELD_DESTS if given(args, dest)}


def _check_named(ctx: Context, changes: dict[str, Any]) -> None:
    """The users and groups a book-in or request-in list names exist: a mistyped name
    would otherwise name nobody, silently."""
    for column in ("mr_book_in", "mr_request_in"):
        for kind, name in who_may_book.named(who_may_book.entries(changes.get(column, ""))):
            if not _exists(ctx, kind, name):
                raise NotFound(f"{FLAG_NAMES[column]}: {kind} {name!r} does not exist")


def _exists(ctx: Context, kind: str, name: str) -> bool:
    """A user of that name; a group in any letter case, as booking compares groups."""
    if kind == "group":
        return name.casefold() in {g.name.casefold() for g in ctx.source.groups()}
    return name in {m.name for m in ctx.source.users()}


def show_user(session: Session, args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    return user_details(session, ctx.source.user(args.user), ctx.settings, ctx.source)


def create_user(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    changes = _field_changes(args)
    _check_named(ctx, changes)
    basics = {key: changes.pop(key) for key in ("email", "fullname", "active", "admin_level")
              if key in changes}
    mailbox = directory.create_user(session, name=args.user, password=args.password,
                                    now=ctx.now, **basics)
    directory.update_user(session, mailbox, **changes)
    _features(session, args, ctx, mailbox)
    event_scripts.queue_event(session, ctx.settings, "createuser", mailbox.name)
    message = f"User created: {mailbox.name}"
    if args.create_store:
        message += f"\nStore created: {stores.create_store(session, mailbox, ctx.now).guid}"
    return message


def _link_users(session: Session, args: argparse.Namespace, ctx: Context, target: Any,
                services: tuple[tuple[str, Callable], ...]) -> None:
    """``--add-… NAME`` / ``--remove-… NAME``: link each named user to ``target`` or unlink it."""
    for dest, service in services:
        for name in names(args, dest):
            service(session, target, ctx.source.user(name))


def _features(session: Session, args: argparse.Namespace, ctx: Context,
              mailbox: Mailbox) -> None:
    for name in names(args, "add_feature"):
        directory.add_feature(session, mailbox, name)
    for name in names(args, "remove_feature"):
        directory.remove_feature(session, mailbox, name, ctx.settings.disabled_features)


OOO_DESTS = ("ooo", "ooo_clear", "ooo_subject", "ooo_message", "ooo_from", "ooo_until")


def _out_of_office(session: Session, args: argparse.Namespace, ctx: Context,
                   mailbox: Mailbox) -> None:
    """The ``--ooo*`` flags: the state kopano-set-oof changes, times in the user's zone."""
    zone = user_zone(mailbox, ctx.settings)
    changes: dict[str, Any] = {}
    if args.ooo_clear:
        changes.update(subject="", body="", start=None, until=None)
    for dest, key, read in (("ooo", "enabled", bool), ("ooo_subject", "subject", str),
                            ("ooo_message", "body", read_message),
                            ("ooo_from", "start", lambda v: parse_time(v, zone)),
                            ("ooo_until", "until", lambda v: parse_time(v, zone))):
        if given(args, dest):
            changes[key] = read(getattr(args, dest))
    if changes:
        set_oof(session, mailbox, **changes)


def update_user(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    mailbox = ctx.source.user(args.user)
    changes = _field_changes(args)
    _check_named(ctx, changes)
    directory.update_user(session, mailbox, name=args.name, password=args.password, **changes)
    _link_users(session, args, ctx, mailbox, (("add_sendas", directory.add_sendas),
                                              ("remove_sendas", directory.remove_sendas)))
    _features(session, args, ctx, mailbox)
    _out_of_office(session, args, ctx, mailbox)
    for dest, service in (("mr_add_delegate", directory.add_delegate),
                          ("mr_remove_delegate", directory.remove_delegate)):
        for name in getattr(args, dest) or ():
            service(session, mailbox, ctx.source.user(name))
    if given(args, "mr_booking_window_days"):
        # A longer window must hold every booked series' slots at once, not from the next
        # pass of the server on (mr_engine.horizon).
        extend_and_queue(session, mailbox, ctx.settings, ctx.now)
    message = f"User updated: {mailbox.name}"
    if given(args, "calendar_token"):
        feed = _calendar_token(mailbox, args.calendar_token, ctx)
        return Report(f"{message}\n{feed}", feed)
    return message


def _calendar_token(mailbox: Mailbox, choice: str, ctx: Context) -> str:
    """``--calendar-token new|none``: a new secret for the feed (and its URL), or none."""
    if mailbox.resource_type == "none":
        raise DirectoryError(f"{mailbox.name} is not a resource: it has no calendar feed")
    mailbox.calendar_token = availability.new_calendar_token() if choice == "new" else None
    return f"Calendar feed: {availability.feed_url(ctx.settings.public_base, mailbox)}"


def delete_user(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    mailbox = ctx.source.user(args.user)
    store = stores.store_of(session, mailbox)
    # Kopano keeps a deleted user's store as an orphan, to be hooked or removed later.
    stores.orphan_store_of(session, mailbox)
    directory.delete_user(session, mailbox)
    event_scripts.queue_event(session, ctx.settings, "deleteuser", args.user)
    kept = f" (store {store.guid} is now an orphan)" if store else ""
    return f"User deleted: {args.user}{kept}"


def list_users(session: Session, args: argparse.Namespace, ctx: Context) -> list[dict]:
    return [{**store_modes.user_row(m, ctx), "email": m.email, "active": m.active,
             "admin_level": m.admin_level, "resource_type": m.resource_type}
            for m in ctx.source.users() if args.show_hidden or not m.hidden]


def _group_info(info: GroupInfo) -> dict[str, Any]:
    # Member groups only where there are any: a group without nesting reads as before.
    nested = {"member_groups": info.groups} if info.groups else {}
    pool = {"mr_pool": True} if info.pool else {}  # likewise: a plain group reads as before
    return {"name": info.name, "email": info.email, "members": info.members, **nested, **pool}


def list_groups(session: Session, args: argparse.Namespace, ctx: Context) -> list[dict]:
    return [_group_info(info) for info in ctx.source.groups()]


def show_group(session: Session, args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    """The group, and its users as §8.2.2's table lists them (with their stores)."""
    info = _group_info(ctx.source.group(args.group))
    members = [ctx.source.user(name) for name in info["members"]]
    return {**info, "users": [{**store_modes.user_row(m, ctx), "store": _guid(session, m)}
                              for m in members]}


def _guid(session: Session, mailbox: Mailbox) -> str | None:
    store = stores.store_of(session, mailbox)
    return store.guid if store else None


def create_group(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    group = directory.create_group(session, args.group, args.email)
    if args.mr_pool is not None:
        directory.set_pool(session, group, args.mr_pool)
    event_scripts.queue_event(session, ctx.settings, "creategroup", args.group)
    return f"Group created: {args.group}"


def update_group(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    group = directory.get_group(session, args.group)
    if args.email is not None:
        directory.set_group_email(session, group, args.email)
    if args.mr_pool is False:  # before the members change: a plain group takes anyone
        directory.set_pool(session, group, False)
    # A user of that name, else a group: a group joins another (nesting).
    for dest, for_user, for_group in (
            ("add_user", directory.add_member, directory.add_group_member),
            ("remove_user", directory.remove_member, directory.remove_group_member)):
        for name in names(args, dest):
            member = directory.member_by_name(session, name)
            (for_user if isinstance(member, Mailbox) else for_group)(session, group, member)
    if args.mr_pool:  # after the members change: they are what it checks
        directory.set_pool(session, group, True)
    return f"Group updated: {args.group}"


def delete_group(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    directory.delete_group(session, directory.get_group(session, args.group))
    event_scripts.queue_event(session, ctx.settings, "deletegroup", args.group)
    return f"Group deleted: {args.group}"


# --- choosing the mode ---------------------------------------------------------------------

@dataclass(frozen=True)
class Mode:
    usage: str                                   # names the mode in usage errors
    run: Callable[[Session, argparse.Namespace, Context], Any]
    allowed: frozenset[str]                      # dests that may be given with it
    # Text output (``--json`` prints the data); a change's report keeps its lines, escaped.
    render: Callable[[Any], str] = printable_lines
    readonly: bool = False  # and prints what it reads; a change prints only with --verbose
    requires: tuple[str, ...] = ()


def _mode(usage: str, run: Callable, allowed: set[str] | frozenset[str], **kw: Any) -> Mode:
    return Mode(usage, run, frozenset(allowed), **kw)


def _listing(usage: str, run: Callable, render: Callable[[Any], str]) -> Mode:
    return _mode(usage, run, {"json"}, render=render, readonly=True)


VERBOSE = {"verbose"}
USER_UPDATES = {"name", *PASSWORD_DESTS, "add_sendas", "remove_sendas", "calendar_token",
                "mr_add_delegate", "mr_remove_delegate", "add_feature", "remove_feature",
                *OOO_DESTS, *FIELD_DESTS}
GROUP_UPDATES = {"email", "add_user", "remove_user", "mr_pool"}

CREATE_USER = _mode("--create --user", create_user,
                    {"user", *PASSWORD_DESTS, "create_store", "add_feature", *FIELD_DESTS,
                     *VERBOSE}, requires=("email",))
CREATE_GROUP = _mode("--create --group", create_group, {"group", "email", "mr_pool", *VERBOSE})
DELETE_USER = _mode("--delete --user", delete_user, {"user", *VERBOSE})
DELETE_GROUP = _mode("--delete --group", delete_group, {"group", *VERBOSE})
SHOW_USER = _mode("--user NAME (details)", show_user, {"user", "json"},
                  render=fmt.user_details, readonly=True)
UPDATE_USER = _mode("--user NAME with changes", update_user,
                    {"user", *USER_UPDATES, *VERBOSE})
SHOW_GROUP = _mode("--group NAME (details)", show_group, {"group", "json"},
                   render=fmt.group_details, readonly=True)
UPDATE_GROUP = _mode("--group NAME with changes", update_group,
                     {"group", *GROUP_UPDATES, *VERBOSE})

# Flags that name a mode by themselves, in order of precedence.
SIMPLE_MODES = (
    ("list_users", _mode("--list-users", list_users, {"json", "show_hidden"},
                         render=fmt.users_list, readonly=True)),
    ("list_groups", _listing("--list-groups", list_groups, fmt.groups_list)),
    ("list_orphans", _listing("--list-orphans", store_modes.list_orphans, fmt.orphans)),
    ("list_stores", _listing("--list-stores", store_modes.list_stores, fmt.stores_list)),
    ("user_count", _listing("--user-count", store_modes.user_count, fmt.user_count)),
    ("sync", _mode("--sync", store_modes.sync, {"json", *VERBOSE})),
    ("purge_softdelete", _mode("--purge-softdelete", store_modes.purge_softdelete, VERBOSE)),
    ("remove_store", _mode("--remove-store", store_modes.remove_store, VERBOSE)),
    ("hook_store", _mode("--hook-store", store_modes.hook_store, {"user", *VERBOSE})),
    ("unhook_store", _mode("--unhook-store", store_modes.unhook_store, {"user", *VERBOSE})),
    ("create_store", _mode("--create-store", store_modes.create_store, {"user", *VERBOSE})),
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


class NoPassword(Exception):
    """The input ended (Ctrl-D) before a password was given."""


def _line(prompt: str) -> str:
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise NoPassword() from None


def read_password() -> str:
    """Ask twice on a terminal; otherwise take one line from stdin (scripts, pipes)."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise NoPassword()
        password = line.rstrip("\r\n")
    else:
        password = _line("Password: ")
        if _line("Repeat password: ") != password:
            raise UsageError("the passwords do not match")
    if not password:
        raise UsageError("the password is empty")
    return password


# --- running -------------------------------------------------------------------------------

def each_target(args: argparse.Namespace) -> list[argparse.Namespace]:
    """One namespace per ``-u`` (or ``-g``) given, naming that one: the change applies to
    each of them, as with Kopano's tool; without either, the flags as they are."""
    dest = "user" if args.user is not None else "group" if args.group is not None else None
    if dest is None:
        return [args]
    return [_naming(args, dest, name) for name in getattr(args, dest)]


def _naming(args: argparse.Namespace, dest: str, name: str) -> argparse.Namespace:
    one = copy.copy(args)
    setattr(one, dest, name)
    return one


def _output(mode: Mode, args: argparse.Namespace, results: list[Any]) -> str | None:
    """What to print: the data (--json), what was read, or what a change has to say."""
    if args.json:
        return None
    if mode.readonly:
        return "\n\n".join(mode.render(r) for r in results)
    reports = [r if isinstance(r, Report) else Report(r) for r in results]
    lines = [r.said if args.verbose else r.shown for r in reports]
    return printable_lines("\n".join(line for line in lines if line)) or None


# What the directory defines when it is not the store's own (user_plugin = ldap): Kopano
# too refused these with its ldap plugin; the next read would undo them anyway.
SOURCE_DEFINED = ("create", "delete", "name", "password", "password_prompt", "email",
                  "fullname", "active", "admin_level", "quota_warning", "quota_soft",
                  "quota_hard", "resource_type", "resource_capacity", "add_feature",
                  "remove_feature", "add_sendas", "remove_sendas", "add_user", "remove_user")


def refused_by_source(args: argparse.Namespace, settings: Settings) -> str | None:
    """Why the flags cannot be done with this ``user_plugin``; None when they can."""
    if settings.user_plugin == "db":
        return None
    flags = [FLAG_NAMES[dest] for dest in SOURCE_DEFINED if given(args, dest)]
    if not flags:
        return None
    return (f"{flags[0]} refused: LDAP is the source of users and groups (user_plugin = "
            f"{settings.user_plugin}); change them in the directory")


def execute(mode: Mode, args: argparse.Namespace) -> int:
    settings = settings_from(args)
    db = None
    try:
        db = open_db(settings)
        with (db.read() if mode.readonly else db.write()) as session:
            ctx = Context(settings, utcnow(), open_directory(settings, session))
            results = [mode.run(session, one, ctx) for one in each_target(args)]
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
        data = [r.data if isinstance(r, Report) else r for r in results]
        print_json(data[0] if len(data) == 1 else data)
    elif (text := _output(mode, args, results)) is not None:
        print(text)
    return 0


def _refusal(args: argparse.Namespace) -> int:
    """1 (said why) when the flags change what the user plugin's source defines, else 0:
    checked before the flags' own rules, so that a change LDAP owns is refused as such."""
    refused = refused_by_source(args, settings_from(args))
    return fail(refused) if refused is not None else 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        apply_aliases(args)
    except UsageError as exc:
        parser.error(str(exc))
    if (code := run_guarded(lambda: _refusal(args))) != 0:
        return code
    try:
        mode = choose_mode(args)
        if args.password_prompt:
            args.password = read_password()
    except UsageError as exc:
        parser.error(str(exc))
    except NoPassword:
        return fail("no password given: the input ended (Ctrl-D)")
    return run_guarded(lambda: execute(mode, args))


if __name__ == "__main__":
    sys.exit(main())
