"""Approval by delegates: asking them, and carrying out what they decide.

A request that only the resource's request-in list allows is booked tentatively by
``booking.hold_for_approval``, which calls ``ask``: the booking's earlier approval, if any,
is replaced (its tokens stop working) and each delegate gets ``Approval needed: …``. A
decision comes by mail (``answer_mail``, the LMTP step), from ``mr-engine approvals``, from
the approval page (``decide``), or from the clock (``expire``): accepted, the booking and
its occurrences become ``booked`` and the organizer gets ACCEPTED; declined or expired, the
booking goes (the slot is free) and the organizer gets DECLINED; both with the comment. A
CANCEL or a changed request withdraws the approval (``withdraw``), telling the delegates.

Every function runs in the caller's transaction and returns the messages to queue; the
deciding ones take the resource's lock first, as booking does, so a decision and a request
for the same resource never interleave.
"""

from __future__ import annotations

import datetime as dt
import email.message
import logging
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.core import approval_mail as mail
from mr_engine.core import approval_tokens as tokens
from mr_engine.core import auth_results, booked_calendar
from mr_engine.core.headers import first_address, header_text
from mr_engine.core.itip import Invitation
from mr_engine.core.outgoing import one_line
from mr_engine.core.reply import Answer
from mr_engine.core.who_may_book import organizer_verified
from mr_engine.services import horizon
from mr_engine.services.replies import OutgoingReply, compose, wanted
from mr_engine.store import approvals as store
from mr_engine.store import calendar_store as cal
from mr_engine.store import directory
from mr_engine.store.db import lock_mailbox
from mr_engine.store.approvals import CANCELLED, REPLACED
from mr_engine.store.models import Approval, Booking, Mailbox

__all__ = ["CANCELLED", "REPLACED", "Decided", "Hold", "MailAnswer", "UnknownToken",
           "answer_mail", "ask", "awaiting", "by_token", "decide", "decide_by_token",
           "delegates", "expire", "notify", "page_url", "shown", "withdraw"]

log = logging.getLogger(__name__)

ADMINISTRATOR = "an administrator"  # who decides with mr-engine approvals
PAGE = "a delegate on the approval page"  # whoever holds the page's link


# --- asking ---------------------------------------------------------------------------------

def delegates(session: Session, resource: Mailbox) -> list[mail.Person]:
    return [mail.Person(d.email, d.fullname) for d in directory.delegates_of(session, resource)]


def awaiting(people: list[mail.Person]) -> str:
    """What a tentative reply says it waits for."""
    return f"awaiting approval by {mail.named(people)}"


def _person(mailbox: Mailbox) -> mail.Person:
    return mail.Person(mailbox.email, mailbox.fullname or mailbox.name)


def page_url(settings: Settings, token: str) -> str:
    """The approval page of ``token``; "" when the HTTP front end does not run."""
    return f"{settings.public_base.rstrip('/')}/approvals/{token}" \
        if token and settings.http_listen else ""


def _asked(session: Session, approval: Approval, settings: Settings, token: str = "",
           recurrence: tuple[str, ...] = (), declined: int = 0) -> mail.Asked:
    resource = store.resource_of(session, approval)
    booking = approval.booking
    held = cal.extent(session, booking) if booking is not None else None
    return mail.Asked(approval.id, _person(resource),
                      mail.Person(approval.organizer, booking.organizer_name if booking else ""),
                      approval.summary, approval.start, approval.end,
                      horizon.zone_of(resource, settings), held.count if held else 0,
                      recurrence, declined, approval.expires_at, token,
                      page_url(settings, token))


def _to_each(resource: Mailbox, people: list[mail.Person], subject: str,
             build: Callable[[mail.Person], bytes]) -> list[OutgoingReply]:
    return [OutgoingReply(resource.email, p.email, subject, build(p)) for p in people]


@dataclass(frozen=True)
class Hold:
    """A request just booked tentatively, as ``ask`` needs it."""

    booking: Booking
    invitation: Invitation
    message_id: str | None
    declined: int  # occurrences of the series declined for conflicts
    now: dt.datetime


def ask(session: Session, resource: Mailbox, hold: Hold, settings: Settings,
        people: list[mail.Person]) -> list[OutgoingReply]:
    """Open the booking's approval (replacing an earlier one) and ask each delegate."""
    _close_pending(session, hold.booking, store.REPLACED, hold.now)
    held = cal.extent(session, hold.booking)
    assert held is not None  # it was just booked, tentatively
    approval = store.open_approval(session, store.Held(
        hold.booking, held.start, held.end, hold.message_id, hold.now,
        resource.resource_settings.approval_timeout_hours))
    master = hold.invitation.master
    asked = _asked(session, approval, settings, store.token_of(session, approval),
                   master.rrule if master else (), hold.declined)
    log.info("%s: %s: held for approval %d by %s", resource.name, hold.booking.uid,
             approval.id, mail.named(people))
    return _to_each(resource, people, f"Approval needed: {approval.summary}",
                    lambda p: mail.request_mail(asked, p, hold.now, settings.hostname))


def notify(session: Session, resource: Mailbox, booking: Booking, settings: Settings,
           now: dt.datetime) -> list[OutgoingReply]:
    """``--mr-notify-delegates``: tell the delegates of an automatic booking."""
    people = delegates(session, resource)
    held = cal.extent(session, booking)
    if not people or held is None:
        return []
    asked = mail.Asked(0, _person(resource), mail.Person(booking.organizer,
                                                          booking.organizer_name),
                       booking.summary, held.start, held.end,
                       horizon.zone_of(resource, settings), held.count)
    return _to_each(resource, people, f"Booked: {booking.summary}",
                    lambda p: mail.notice_mail(asked, p, now, settings.hostname))


def _close_pending(session: Session, booking: Booking, status: str,
                   now: dt.datetime) -> Approval | None:
    approval = store.pending_of(session, booking)
    if approval is not None:
        store.close(approval, status, now)
    return approval


def withdraw(session: Session, resource: Mailbox, booking: Booking, status: str, why: str,
             settings: Settings, now: dt.datetime) -> list[OutgoingReply]:
    """The booking's pending approval is over before anyone decided: ``status`` cancelled
    (the organizer cancelled) or replaced (changed, and now decided without approval);
    closed, and the delegates told ``why``."""
    approval = _close_pending(session, booking, status, now)
    if approval is None:
        return []
    asked = _asked(session, approval, settings)
    log.info("%s: %s: approval %d withdrawn: %s", resource.name, booking.uid, approval.id, why)
    return _to_each(resource, delegates(session, resource),
                    f"Approval withdrawn: {approval.summary}",
                    lambda p: mail.withdrawn_mail(asked, p, why, now, settings.hostname))


# --- deciding -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """How an approval is closed: its status, the reply's reason, who decided and why."""

    status: str  # accepted | declined | expired
    reason: str
    by: str = ""
    comment: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == store.ACCEPTED


@dataclass
class Decided:
    """What a decision did: ``outcome`` accepted or declined, the replies to queue."""

    approval_id: int
    outcome: str
    replies: list[OutgoingReply] = field(default_factory=list)


def _reason(verb: str, by: str, comment: str) -> str:
    return f"{verb} by {by}" + (f": {comment}" if comment else "")


def _answers(inv: Invitation, partstat: str, reason: str) -> list[Answer]:
    """The whole meeting answered: its master, or each of its occurrences without one."""
    events = [inv.master] if inv.master is not None else list(inv.events)
    return [Answer(e, partstat, reason, e.recurrence_id) for e in events]


def _reply(resource: Mailbox, approval: Approval, booking: Booking, partstat: str,
           reason: str, settings: Settings, now: dt.datetime) -> list[OutgoingReply]:
    inv = booked_calendar.read(booking.calendar, horizon.zone_of(resource, settings))
    if not wanted(inv, resource):
        return []
    try:
        return [compose(inv, inv.events[0], resource, _answers(inv, partstat, reason),
                        approval.request_message_id, now, settings.hostname)]
    except ValueError as exc:
        log.warning("%s: %s: no reply sent: %s", resource.name, booking.uid, exc)
        return []


def _pending(session: Session, approval_id: int) -> Approval:
    approval = store.get(session, approval_id)
    if approval.status != store.PENDING:
        raise store.ApprovalError(f"approval {approval_id} is not pending: {approval.status}")
    if approval.booking is None:
        raise store.ApprovalError(f"approval {approval_id} has no booking any more")
    return approval


def decide(session: Session, approval_id: int, accept: bool, by: str, comment: str,
           settings: Settings, now: dt.datetime) -> Decided:
    """Accept or decline a pending approval; ApprovalError when it is not pending. Its
    expiry is the token's business (``answer_mail``, ``by_token``): an administrator may
    still decide one the maintenance pass has not declined yet."""
    resource = lock_mailbox(session, store.get(session, approval_id).resource_id)
    approval = _pending(session, approval_id)
    verb = "approved" if accept else "declined"
    verdict = Verdict(store.ACCEPTED if accept else store.DECLINED,
                      _reason(verb, by, comment), by, comment)
    return _settle(session, resource, approval, verdict, settings, now)


def _settle(session: Session, resource: Mailbox, approval: Approval, verdict: Verdict,
            settings: Settings, now: dt.datetime) -> Decided:
    booking = approval.booking
    assert booking is not None
    partstat = "ACCEPTED" if verdict.accepted else "DECLINED"
    replies = _reply(resource, approval, booking, partstat, verdict.reason, settings, now)
    if verdict.accepted:
        cal.set_status(session, booking, cal.BOOKED)
    else:
        cal.delete_booking(session, booking)  # the slot is free again
    store.close(approval, verdict.status, now, verdict.by, verdict.comment)
    log.info("%s: %s: approval %d %s: %s", resource.name, approval.uid, approval.id,
             verdict.status, verdict.reason)
    return Decided(approval.id, verdict.status, replies)


def expire(session: Session, approval_id: int, settings: Settings,
           now: dt.datetime) -> Decided | None:
    """Decline a pending approval nobody decided in time (None: decided meanwhile)."""
    resource = lock_mailbox(session, store.get(session, approval_id).resource_id)
    try:
        approval = _pending(session, approval_id)
    except store.ApprovalError:
        return None
    # The timeout the request was given, whatever the setting says now.
    hours = round((approval.expires_at - approval.requested_at).total_seconds() / 3600)
    verdict = Verdict(store.EXPIRED, f"no decision within {mail.waited(hours)}")
    return _settle(session, resource, approval, verdict, settings, now)


# --- the approval page ----------------------------------------------------------------------

class UnknownToken(store.ApprovalError):
    """A token this engine did not make (forged, mistyped)."""


def by_token(session: Session, token: str, now: dt.datetime) -> Approval:
    """The pending, unexpired approval ``token`` names: UnknownToken for a forged one,
    ApprovalError for one that is decided, replaced or expired."""
    approval = store.by_token(session, token)
    if approval is None:
        raise UnknownToken("no such approval")
    if approval.status != store.PENDING or now >= approval.expires_at:
        state = approval.status if approval.status != store.PENDING else store.EXPIRED
        raise store.ApprovalError(f"this approval is no longer pending ({state})")
    return approval


def _rules(session: Session, approval: Approval, settings: Settings) -> tuple[str, ...]:
    booking = approval.booking
    if booking is None:
        return ()
    zone = horizon.zone_of(store.resource_of(session, approval), settings)
    master = booked_calendar.read(booking.calendar, zone).master
    return master.rrule if master is not None else ()


def shown(session: Session, token: str, settings: Settings, now: dt.datetime) -> mail.Asked:
    """What the approval page shows of the request ``token`` names."""
    approval = by_token(session, token, now)
    return _asked(session, approval, settings, token, _rules(session, approval, settings))


def decide_by_token(session: Session, token: str, accept: bool, comment: str,
                    settings: Settings, now: dt.datetime) -> Decided:
    """The approval page's buttons: whoever holds the link decides."""
    approval = by_token(session, token, now)
    return decide(session, approval.id, accept, PAGE, one_line(comment, mail.MAX_COMMENT),
                  settings, now)


# --- decisions by mail ----------------------------------------------------------------------

@dataclass(frozen=True)
class MailAnswer:
    """What a mail to an approve or decline address did: ``refused`` says why nothing."""

    refused: str = ""
    decided: Decided | None = None


def _text_of(message: email.message.Message) -> str:
    """The first text/plain part's text ("" without one)."""
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.is_multipart():
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                return data.decode(part.get_content_charset() or "utf-8", "replace")
    return ""


def _senders(message: email.message.Message, envelope_sender: str) -> tuple[str, str, str]:
    return (first_address(message, "From"), first_address(message, "Sender"), envelope_sender)


def _delegate(session: Session, settings: Settings, resource: Mailbox,
              message: email.message.Message, envelope_sender: str) -> str | None:
    """The delegate who sent ``message`` (verified at the resource's organizer level), or
    None. The claim is the From, Sender or envelope sender; ``authenticated`` wants a
    trusted Authentication-Results vouching for it too (``core.auth_results``)."""
    senders = _senders(message, envelope_sender)
    claimed = {s.lower() for s in senders if s}
    level = resource.resource_settings.verify_organizer
    results = [header_text(v) for v in message.get_all("Authentication-Results", [])]
    for person in directory.delegates_of(session, resource):
        if person.email_lower not in claimed:
            continue
        vouched = auth_results.vouches_for(results, settings.trusted_authserv_ids,
                                           person.email, person.name)
        # "none" believes any claim; the claim itself must still be a sender's address.
        if organizer_verified(level if level != "none" else "match", person.email,
                              senders, vouched):
            return person.email
    return None


def _refusal(resource: Mailbox, approval: Approval | None, now: dt.datetime) -> str:
    if approval is None:
        return "not a token of this engine (forged or mistyped)"
    if approval.resource_id != resource.id:
        return f"a token of approval {approval.id}, which is not this resource's"
    if approval.status != store.PENDING:
        return f"approval {approval.id} is no longer pending ({approval.status})"
    if now >= approval.expires_at:
        return f"approval {approval.id} expired"
    return ""


def answer_mail(session: Session, resource: Mailbox, ask: tokens.Ask,
                message: email.message.Message, envelope_sender: str, settings: Settings,
                now: dt.datetime) -> MailAnswer:
    """A mail to ``resource``'s approve or decline address: decided when the token is
    genuine, this resource's, pending and in time, and a delegate sent it."""
    lock_mailbox(session, resource.id)
    approval = store.by_token(session, ask.token)
    refused = _refusal(resource, approval, now)
    if refused:
        return MailAnswer(refused)
    assert approval is not None
    who = _delegate(session, settings, resource, message, envelope_sender)
    if who is None:
        return MailAnswer("the sender is not a (verified) delegate of this resource")
    comment = mail.comment_of(_text_of(message))
    return MailAnswer(decided=decide(session, approval.id, ask.action == tokens.APPROVE,
                                     who, comment, settings, now))
