"""The SQL directory: users, resources and groups in the store's tables, and resolving an
address to mailboxes. The engine reads it through ``directories.db`` (``user_plugin = db``);
kopano-cli changes it with the functions here, which only this source has.

Every function takes an open SQLAlchemy session and leaves committing to the caller, so a
command-line call or a delivery is one transaction: nothing half-written on error.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from collections.abc import Collection, Iterable

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from mr_engine.store.directories import (EVERYONE, DirectoryError, Duplicate, GroupInfo,
                                         NotFound)
from mr_engine.store.models import (Group, GroupMember, GroupNesting, Mailbox, ResourceDelegate,
                                    SendAs)
from mr_engine.store.prepared import Prepared
from mr_engine.core import features
from mr_engine.core.addresses import strip_detail
from mr_engine.core.passwords import hash_password
from mr_engine.core.resource_settings import SETTINGS, defaults, invalid_choice, parsed


def _check_email(email: str) -> str:
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in email):
        raise DirectoryError(f"invalid email address: {email!r}")
    return email


def get_user(session: Session, name: str) -> Mailbox:
    mailbox = session.scalar(select(Mailbox).where(Mailbox.name == name))
    if mailbox is None:
        raise NotFound(f"user {name!r} does not exist")
    return mailbox


def _ensure_unique(session: Session, name: str | None, email: str | None,
                   exclude: int | None = None) -> None:
    if name is not None:
        other = session.scalar(select(Mailbox.id).where(Mailbox.name == name))
        if other is not None and other != exclude:
            raise Duplicate(f"a user named {name!r} already exists")
    if email is not None:
        lowered = email.lower()
        other = session.scalar(select(Mailbox.id).where(Mailbox.email_lower == lowered))
        if other is not None and other != exclude:
            raise Duplicate(f"the email address {email!r} is already in use")
        if session.scalar(select(Group.id).where(Group.email_lower == lowered)) is not None:
            raise Duplicate(f"the email address {email!r} is already used by a group")


def _check_name(name: str) -> str:
    if not name or any(c.isspace() for c in name):
        raise DirectoryError(f"invalid user name: {name!r}")
    return name


def create_user(session: Session, *, name: str, email: str, fullname: str = "",
                password: str | None = None, active: bool = True, admin_level: int = 0,
                now: dt.datetime) -> Mailbox:
    _check_name(name)
    email = _check_email(email)
    _ensure_unique(session, name, email)
    mailbox = Mailbox(
        name=name, email=email, email_lower=email.lower(), fullname=fullname, active=active,
        admin_level=admin_level, password_hash=hash_password(password) if password else "",
        longest_occurrence=0, created_at=now, **defaults())
    session.add(mailbox)
    session.flush()
    return mailbox


# Fields ``update_user`` accepts, beyond the ones that need special handling below.
_PLAIN_FIELDS = {
    "fullname", "active", "admin_level", "timezone", "quota_warning", "quota_soft", "quota_hard",
    *(s.column for s in SETTINGS),
}


def _check_capacity(mailbox: Mailbox, changes: dict[str, Any]) -> None:
    """A room holds one meeting at a time: capacity is for equipment (how many at once)."""
    kind = changes.get("resource_type", mailbox.resource_type)
    if kind != "room":
        return
    if changes.get("resource_capacity", 1) != 1:
        raise DirectoryError(f"{mailbox.name} is a room, which holds one meeting at a time; "
                             "--resource-capacity is for equipment")
    changes["resource_capacity"] = 1  # what equipment had before becoming a room


def _check_choices(changes: dict[str, Any]) -> None:
    """A setting with declared choices (the resource type) takes only one of them; one that
    declares its parser (working hours, who may book) is stored as that parser writes it."""
    for key, value in changes.items():
        if (problem := invalid_choice(key, value)) is not None:
            raise DirectoryError(problem)
        try:
            changes[key] = parsed(key, value)
        except ValueError as exc:
            raise DirectoryError(str(exc)) from None


def update_user(session: Session, mailbox: Mailbox, **changes: Any) -> Mailbox:
    """Apply the given changes (``None`` values are ignored)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    unknown = set(changes) - _PLAIN_FIELDS - {"name", "email", "password"}
    if unknown:
        raise DirectoryError(f"unknown user field {sorted(unknown)[0]}")
    if "name" in changes:
        _check_name(changes["name"])
    if "email" in changes:
        changes["email"] = _check_email(changes["email"])
    _ensure_unique(session, changes.get("name"), changes.get("email"), exclude=mailbox.id)
    _check_choices(changes)
    _check_capacity(mailbox, changes)
    if "name" in changes:
        mailbox.name = changes.pop("name")
    if "email" in changes:
        mailbox.email = changes.pop("email")
        mailbox.email_lower = mailbox.email.lower()
    if "password" in changes:
        mailbox.password_hash = hash_password(changes.pop("password"))
    for key, value in changes.items():
        setattr(mailbox, key, value)
    session.flush()
    return mailbox


def delete_user(session: Session, mailbox: Mailbox) -> None:
    """Delete the mailbox; send-as, membership, booking and out-of-office rows cascade.

    Orphan its store first (``stores.orphan_store_of``) so that the store is kept.
    """
    session.delete(mailbox)
    session.flush()


def list_users(session: Session) -> list[Mailbox]:
    return list(session.scalars(select(Mailbox).order_by(Mailbox.name)))


# --- send-as -------------------------------------------------------------------------------

LinkRow = SendAs | GroupMember | GroupNesting | ResourceDelegate


def _link(session: Session, row: LinkRow) -> None:
    """Add a link row (send-as, membership) unless it is there already."""
    if session.get(type(row), row.key) is None:
        session.add(row)
        session.flush()


def _unlink(session: Session, row_type: type[LinkRow], key: tuple[int, int],
            missing: str) -> None:
    row = session.get(row_type, key)
    if row is None:
        raise NotFound(missing)
    session.delete(row)
    session.flush()


def add_sendas(session: Session, mailbox: Mailbox, delegate: Mailbox) -> None:
    _link(session, SendAs(mailbox_id=mailbox.id, delegate_id=delegate.id))


def remove_sendas(session: Session, mailbox: Mailbox, delegate: Mailbox) -> None:
    _unlink(session, SendAs, (mailbox.id, delegate.id),
            f"{delegate.name} is not a send-as delegate of {mailbox.name}")


def sendas_names(session: Session, mailbox: Mailbox) -> list[str]:
    return [m.name for m in _linked(session, SendAs.mailbox_id, SendAs.delegate_id, mailbox)]


def _linked(session: Session, owner_column: Any, member_column: Any,
            owner: Mailbox) -> list[Mailbox]:
    """The mailboxes a link table (send-as, resource delegates) links to ``owner``, by name."""
    members = select(member_column).where(owner_column == owner.id)
    return list(session.scalars(select(Mailbox).where(Mailbox.id.in_(members))
                                .order_by(Mailbox.name)))


# --- features --------------------------------------------------------------------------------

def user_features(mailbox: Mailbox) -> features.UserFeatures:
    """What is set for the user: enabled and disabled features (``core.features``)."""
    return features.from_columns(mailbox.features, mailbox.disabled_features)


def _set_features(session: Session, mailbox: Mailbox, chosen: features.UserFeatures) -> None:
    mailbox.features = features.to_column(chosen.enabled)
    mailbox.disabled_features = features.to_column(chosen.disabled)
    session.flush()


def _feature(name: str) -> str:
    try:
        return features.check(name)
    except ValueError as exc:
        raise DirectoryError(str(exc)) from None


def add_feature(session: Session, mailbox: Mailbox, name: str) -> None:
    """Enable a feature for the user, whatever ``disabled_features`` says (twice is
    harmless, as for send-as)."""
    _set_features(session, mailbox, features.enable(user_features(mailbox), _feature(name)))


def remove_feature(session: Session, mailbox: Mailbox, name: str,
                   globally_disabled: Collection[str]) -> None:
    """Disable a feature the user has (table 8.1: by the user's own list or because the
    server does not disable it); one the user does not have is Kopano's "not found"."""
    feature = _feature(name)
    if not features.effective(user_features(mailbox), globally_disabled)[feature]:
        raise NotFound(f"{mailbox.name} does not have the feature {feature}")
    _set_features(session, mailbox, features.disable(user_features(mailbox), feature))


# --- resource delegates --------------------------------------------------------------------

def add_delegate(session: Session, resource: Mailbox, delegate: Mailbox) -> None:
    _link(session, ResourceDelegate(resource_id=resource.id, delegate_id=delegate.id))


def remove_delegate(session: Session, resource: Mailbox, delegate: Mailbox) -> None:
    _unlink(session, ResourceDelegate, (resource.id, delegate.id),
            f"{delegate.name} is not a delegate of {resource.name}")


def delegates_of(session: Session, resource: Mailbox) -> list[Mailbox]:
    """Who approves the resource's requests, by name."""
    return _linked(session, ResourceDelegate.resource_id, ResourceDelegate.delegate_id, resource)


# --- groups --------------------------------------------------------------------------------

def get_group(session: Session, name: str) -> Group:
    if name == EVERYONE:  # listed with the groups, but not a row: nothing to change
        raise DirectoryError(f"{EVERYONE} is built in (every user); it cannot be changed")
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None:
        raise NotFound(f"group {name!r} does not exist")
    return group


def create_group(session: Session, name: str, email: str | None = None) -> Group:
    if name == EVERYONE or session.scalar(select(Group.id).where(Group.name == name)):
        raise Duplicate(f"a group named {name!r} already exists")
    group = Group(name=name)
    session.add(group)
    set_group_email(session, group, email)
    return group


def set_group_email(session: Session, group: Group, email: str | None) -> None:
    if email:
        email = _check_email(email)
        if session.scalar(select(Mailbox.id).where(Mailbox.email_lower == email.lower())):
            raise Duplicate(f"the email address {email!r} is already used by a user")
        other = session.scalar(select(Group.id).where(Group.email_lower == email.lower()))
        if other is not None and other != group.id:
            raise Duplicate(f"the email address {email!r} is already used by a group")
    group.email = email or None
    group.email_lower = email.lower() if email else None
    session.flush()


def delete_group(session: Session, group: Group) -> None:
    session.execute(delete(GroupMember).where(GroupMember.group_id == group.id))
    session.execute(delete(GroupNesting).where(
        (GroupNesting.group_id == group.id) | (GroupNesting.member_id == group.id)))
    session.delete(group)
    session.flush()


def add_member(session: Session, group: Group, mailbox: Mailbox) -> None:
    if group.mr_pool and mailbox.resource_type == "none":
        raise DirectoryError(f"{mailbox.name} is not a resource, and {group.name!r} is a pool "
                             "(only resources can be pool members)")
    _link(session, GroupMember(group_id=group.id, mailbox_id=mailbox.id))


def remove_member(session: Session, group: Group, mailbox: Mailbox) -> None:
    _unlink(session, GroupMember, (group.id, mailbox.id),
            f"user {mailbox.name!r} is not a member of group {group.name!r}")


def add_group_member(session: Session, group: Group, member: Group) -> None:
    """A group as a member: its members (and its groups') become the group's too."""
    if member.id == group.id:
        raise DirectoryError(f"group {group.name!r} cannot be a member of itself")
    _link(session, GroupNesting(group_id=group.id, member_id=member.id))


def remove_group_member(session: Session, group: Group, member: Group) -> None:
    _unlink(session, GroupNesting, (group.id, member.id),
            f"group {member.name!r} is not a member of group {group.name!r}")


def member_by_name(session: Session, name: str) -> Mailbox | Group:
    """What ``--add-user NAME`` adds to a group: the user, else the group of that name."""
    try:
        return get_user(session, name)
    except NotFound:
        group = session.scalar(select(Group).where(Group.name == name))
    if group is None:
        raise NotFound(f"there is no user or group named {name!r}")
    return group


def member_groups(session: Session, group: Group) -> list[str]:
    """Names of the groups that are direct members of ``group``."""
    return list(session.scalars(
        select(Group.name).join(GroupNesting, GroupNesting.member_id == Group.id)
        .where(GroupNesting.group_id == group.id).order_by(Group.name)))


def _closure(session: Session, start: Iterable[int], step: Any) -> set[int]:
    """Group ids reached from ``start`` by repeating the ``step`` query (one level a
    query); groups already seen are not followed again, so cycles end."""
    seen, frontier = set(start), set(start)
    while frontier:
        frontier = set(session.scalars(step, {"ids": sorted(frontier)})) - seen
        seen |= frontier
    return seen


_CONTAINED = select(GroupNesting.member_id).where(
    GroupNesting.group_id.in_(bindparam("ids", expanding=True)))
_CONTAINING = select(GroupNesting.group_id).where(
    GroupNesting.member_id.in_(bindparam("ids", expanding=True)))


def nested_members(session: Session, group: Group) -> list[Mailbox]:
    """The group's users and those of every group nested in it, by name."""
    ids = _closure(session, [group.id], _CONTAINED)
    return list(session.scalars(
        select(Mailbox).where(Mailbox.id.in_(
            select(GroupMember.mailbox_id).where(GroupMember.group_id.in_(ids))))
        .order_by(Mailbox.name)))


def memberships(session: Session, mailbox: Mailbox) -> list[str]:
    """Names of the groups the mailbox belongs to, directly or through nested groups
    (``Everyone`` first)."""
    direct = session.scalars(select(GroupMember.group_id)
                             .where(GroupMember.mailbox_id == mailbox.id))
    ids = _closure(session, list(direct), _CONTAINING)
    names = session.scalars(select(Group.name).where(Group.id.in_(ids)).order_by(Group.name))
    return [EVERYONE, *names]


def has_domain(session: Session, domain: str) -> bool:
    """Whether a user, resource or group has an address at ``domain`` (case-insensitive)."""
    pattern = "%@" + domain.lower().replace("\\", "\\\\").replace("%", "\\%") \
        .replace("_", "\\_")
    found = select(Mailbox.id).where(Mailbox.email_lower.like(pattern, escape="\\")).limit(1)
    grouped = select(Group.id).where(Group.email_lower.like(pattern, escape="\\")).limit(1)
    return session.scalar(found) is not None or session.scalar(grouped) is not None


# --- pools (resource collections) -------------------------------------------------------

def set_pool(session: Session, group: Group, on: bool) -> None:
    """Make the group a pool (a meeting request to it books one free member), or a plain
    group again. Only a group whose members, nested ones too, are all resources can be one
    (an empty one too: members join it later)."""
    if on:
        members = nested_members(session, group)
        people = [m.name for m in members if m.resource_type == "none"]
        if people:
            raise DirectoryError(f"group {group.name!r} cannot be a pool: {', '.join(people)} "
                                 "is not a resource (only resources can be pool members)")
    group.mr_pool = on
    session.flush()


def pool_at(session: Session, address: str) -> Group | None:
    """The pool whose address is ``address`` (any case, ``+detail`` ignored), else None."""
    return first_at(pools_among(session, address_forms(address)), address)


def address_forms(address: str) -> list[str]:
    """``address`` as a pool's address may match it: lower-cased, then without +detail."""
    lowered = address.strip().lower()
    return list(dict.fromkeys((lowered, strip_detail(lowered))))


def first_at(pools: Iterable[Group], address: str) -> Group | None:
    """The one of ``pools`` at ``address`` itself, else at it without ``+detail``."""
    by_address = {p.email_lower: p for p in pools}
    return next((by_address[a] for a in address_forms(address) if a in by_address), None)


def pool_named(session: Session, name: str) -> Group | None:
    """The pool called ``name`` (or at that address), else None."""
    group = session.scalar(select(Group).where(Group.name == name, Group.mr_pool.is_(True)))
    return group if group is not None else pool_at(session, name)


def pools_of(session: Session, mailbox: Mailbox) -> list[Group]:
    """The pools the mailbox is a member of, directly or through nested groups, by name."""
    direct = session.scalars(select(GroupMember.group_id)
                             .where(GroupMember.mailbox_id == mailbox.id))
    ids = _closure(session, list(direct), _CONTAINING)
    return list(session.scalars(select(Group).where(Group.id.in_(ids), Group.mr_pool.is_(True))
                                .order_by(Group.name)))


# Built once: every meeting request's delivery asks it (services.pools.route).
_POOLS_AMONG = (select(Group).where(Group.email_lower.in_(bindparam("addresses", expanding=True)),
                                    Group.mr_pool.is_(True)).order_by(Group.name))


# Prepared: read once for every batch of deliveries, where the ORM's execution of even
# this one-column select cost more than the meeting step's own queries.
_POOL_ADDRESSES = Prepared(select(Group.email_lower).where(Group.mr_pool.is_(True),
                                                          Group.email_lower.is_not(None)))


def pool_addresses(session: Session) -> frozenset[str]:
    """Every pool's address (lower-case): a site has few, so one query serves a batch of
    deliveries that would otherwise each ask ``pools_among``."""
    return pool_addresses_later(session)()


def pool_addresses_later(session: Session) -> Callable[[], frozenset[str]]:
    """``pool_addresses``, read when the function returned is called (in a
    ``prepared.pipelined`` block: sent with the block's other statements)."""
    session.flush()  # read past the ORM: a pool it holds unflushed counts too
    read = _POOL_ADDRESSES.rows_later(session.connection(), {})
    return lambda: frozenset(row[0] for row in read())


def pools_among(session: Session, addresses: Iterable[str]) -> list[Group]:
    """The pools whose address is one of ``addresses`` (lower-case), by name: one query."""
    wanted = sorted(set(addresses))
    if not wanted:
        return []
    return list(session.scalars(_POOLS_AMONG, {"addresses": wanted}))


def group_members(session: Session, group: Group) -> list[Mailbox]:
    return list(session.scalars(
        select(Mailbox).join(GroupMember, GroupMember.mailbox_id == Mailbox.id)
        .where(GroupMember.group_id == group.id).order_by(Mailbox.name)))


def groups_of(session: Session, mailbox: Mailbox) -> list[str]:
    names = session.scalars(
        select(Group.name).join(GroupMember, GroupMember.group_id == Group.id)
        .where(GroupMember.mailbox_id == mailbox.id).order_by(Group.name))
    return [EVERYONE, *names]


def list_groups(session: Session) -> list[GroupInfo]:
    """Every group with its members; ``Everyone`` (implicit, all mailboxes) first."""
    everyone = GroupInfo(EVERYONE, None, [m.name for m in list_users(session)])
    groups = session.scalars(select(Group).order_by(Group.name))
    return [everyone, *(group_info(session, g) for g in groups)]


def group_info(session: Session, group: Group) -> GroupInfo:
    return GroupInfo(group.name, group.email, [m.name for m in group_members(session, group)],
                     member_groups(session, group), bool(group.mr_pool))


# --- address resolution (delivery) ---------------------------------------------------------

def resolve_address(session: Session, address: str) -> list[Mailbox]:
    """The mailboxes an envelope recipient delivers to: one user, a group's members, or none."""
    lowered = address.strip().lower()
    for candidate in dict.fromkeys((lowered, strip_detail(lowered))):
        mailbox = session.scalar(select(Mailbox).where(Mailbox.email_lower == candidate))
        if mailbox is not None:
            return [mailbox]
        group = session.scalar(select(Group).where(Group.email_lower == candidate))
        if group is not None:
            return nested_members(session, group)
    return []

