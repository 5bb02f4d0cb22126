"""Who asks for a booking: the facts the who-may-book rules read, from the message and the
directory.

The message gives the organizer, From, Sender, envelope sender and its
Authentication-Results fields (``core.auth_results``, believed only for the configured
``trusted_authserv_ids``). The directory (``user_plugin``) gives the organizer's user name,
its groups (nested ones included) and whether its domain is local.

*Local domains* are ``default_domain`` and every domain some user, resource or group of the
directory has an address at: what the engine delivers for. ``hostname`` is not one, as it
names the machine (``localhost`` by default), not a mail domain.

The directory is asked only when the resource's lists or ``allow_external`` need it, so a
resource with the defaults costs no query more than before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import tzinfo

from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.core import auth_results
from mr_engine.core.policy import People, ResourceFacts, ResourcePolicy
from mr_engine.core.who_may_book import ALL, NONE, domain_of
from mr_engine.store import directory
from mr_engine.store.directories import Directory, open_directory
from mr_engine.store.models import Mailbox


@dataclass(frozen=True)
class Message:
    """What the received message says of who sent it."""

    organizer: str
    envelope_sender: str = ""
    from_address: str = ""
    sender_address: str = ""
    attendees: int = 0
    individuals: int = 0  # the people among them (``itip.people_invited``)
    auth_results: tuple[str, ...] = ()  # Authentication-Results field values


def _needs_directory(policy: ResourcePolicy) -> bool:
    return (not policy.allow_external or policy.book_in != (ALL,)
            or policy.request_in != (NONE,) or policy.verify_organizer == "authenticated")


def is_local(source: Directory, settings: Settings, address: str) -> bool:
    domain = domain_of(address)
    return bool(domain) and (domain == settings.default_domain.lower()
                             or source.has_domain(domain))


def people(session: Session, settings: Settings, policy: ResourcePolicy,
           message: Message) -> People:
    """The ``People`` facts of a request for a resource with ``policy``."""
    base = People(organizer=message.organizer, envelope_sender=message.envelope_sender,
                  from_address=message.from_address, sender_address=message.sender_address,
                  attendees=message.attendees, individuals=message.individuals)
    if not message.organizer or not _needs_directory(policy):
        return base
    source = open_directory(settings, session)
    user = source.user_at(message.organizer)
    name = user.name if user is not None else ""
    groups = source.memberships(message.organizer) if user is not None else []
    return dataclasses.replace(
        base, authenticated=_vouched(settings, message, name), user=name,
        groups=frozenset(g.casefold() for g in groups),
        internal=is_local(source, settings, message.organizer))


def _vouched(settings: Settings, message: Message, user: str) -> bool:
    return auth_results.vouches_for(message.auth_results, settings.trusted_authserv_ids,
                                    message.organizer, user)


def delegate_addresses(session: Session, resource: Mailbox) -> tuple[str, ...]:
    return tuple(d.email for d in directory.delegates_of(session, resource))


def resource_facts(session: Session, resource: Mailbox, zone: tzinfo,
                   policy: ResourcePolicy) -> ResourceFacts:
    """The resource's zone, and its delegates when a rule may name them (who may book)."""
    delegates = delegate_addresses(session, resource) if _needs_directory(policy) else ()
    return ResourceFacts(zone=zone, delegates=delegates)
