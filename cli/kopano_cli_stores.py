"""The store and server modes of ``kopano-cli``: stores, orphans, soft-delete purges, user
counts and ``--sync``. Each takes (session, args, ctx) as the user and group modes do
(``kopano_cli``) and returns the data ``--json`` prints, or the report of a change.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import zoneinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from mr_engine.services.directory_sync import synchronise
from mr_engine.store import stores
from mr_engine.store.directories import NotFound
from mr_engine.store.models import Mailbox

from .common import iso
from .kopano_cli_format import Report
from .kopano_cli_flags import PURGE_ALL

if TYPE_CHECKING:
    from .kopano_cli import Context

LAST_MODIFIED = "%Y/%m/%d %H:%M"  # §8.2.3: 2017/05/01 14:22


def user_row(mailbox: Mailbox, ctx: Context) -> dict[str, Any]:
    """A user as Kopano's user tables list it: there is one home server, this one."""
    return {"name": mailbox.name, "fullname": mailbox.fullname,
            "homeserver": ctx.settings.hostname}


def list_orphans(session: Session, args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    orphans = stores.list_orphans(session)
    zone = zoneinfo.ZoneInfo(ctx.settings.default_timezone)
    return {"stores": [{"guid": o.store.guid, "owner": o.store.owner_name, "size": o.store.size,
                        "last_modified": iso(o.last_modified),
                        "last_modified_local": o.last_modified.astimezone(zone)
                        .strftime(LAST_MODIFIED)} for o in orphans.stores],
            "users": [m.name for m in orphans.users_without_store],
            "users_details": [user_row(m, ctx) for m in orphans.users_without_store]}


def list_stores(session: Session, args: argparse.Namespace, ctx: Context) -> list[dict]:
    return [{"guid": s.guid, "user": s.mailbox.name if s.mailbox else None,
             "public": bool(s.is_public), "size": s.size} for s in stores.all_stores(session)]


def user_count(session: Session, args: argparse.Namespace, ctx: Context) -> dict[str, int]:
    """Kopano's counts: active users; non-active ones, which are inactive users and the
    resources (Kopano counts rooms and equipment as non-active users)."""
    kinds = [(m.active, m.resource_type) for m in ctx.source.users()]
    active = sum(1 for on, kind in kinds if on and kind == "none")
    counts = {"active": active, "non_active": len(kinds) - active,
              "na_users": sum(1 for on, kind in kinds if not on and kind == "none"),
              "na_rooms": sum(1 for _, kind in kinds if kind == "room"),
              "na_equipment": sum(1 for _, kind in kinds if kind == "equipment")}
    return {**counts, "total": len(kinds)}


def sync(session: Session, args: argparse.Namespace, ctx: Context) -> Report:
    """The LDAP directory's full pass (``services.directory_sync``) and its summary, shown
    with or without --verbose (a cron job's mail says what changed)."""
    if ctx.settings.user_plugin == "db":
        # The db plugin keeps users in the store itself: there is no other source to read.
        said = f"nothing to synchronise: user_plugin {ctx.settings.user_plugin} keeps the " \
            "users in the store"
        return Report(said, said, {"synchronised": False})
    report = synchronise(session, ctx.source, ctx.settings, ctx.now)
    summary = "\n".join(report.lines())
    return Report(summary, summary, {"synchronised": True, **dataclasses.asdict(report)})


def create_store(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    if args.user is None:
        return f"Public store created: {stores.create_public_store(session, ctx.now).guid}"
    mailbox = ctx.source.user(args.user)
    return f"Store created: {stores.create_store(session, mailbox, ctx.now).guid}"


def hook_store(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    mailbox = ctx.source.user(args.user) if args.user is not None else None
    store = stores.hook_store(session, args.hook_store, mailbox)
    target = f"user {mailbox.name}" if mailbox else "the public store"
    return f"Store hooked: {store.guid} as {target}"


def unhook_store(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    """The store of ``--user``, or without one the public store (Kopano's), becomes an
    orphan."""
    if args.user is None:
        return f"Store unhooked: {stores.unhook_public_store(session).guid} (was public)"
    mailbox = ctx.source.user(args.user)
    store = stores.store_of(session, mailbox)
    if store is None:
        raise NotFound(f"user {mailbox.name!r} has no store")
    stores.orphan_store_of(session, mailbox)
    return f"Store unhooked: {store.guid} (was user {mailbox.name})"


def remove_store(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    return f"Store removed: {stores.remove_store(session, args.remove_store, ctx.now).guid}"


def purge_softdelete(session: Session, args: argparse.Namespace, ctx: Context) -> str:
    days = args.purge_softdelete
    before = None if days == PURGE_ALL else ctx.now - dt.timedelta(days=days)
    return f"Soft-deleted stores purged: {stores.purge_softdeleted(session, before)}"
