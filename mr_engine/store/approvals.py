"""The ``approvals`` table and the tokens' secret: opening, finding and closing approvals.

An approval is opened (``open_approval``) when a request is held for a delegate, and closed
once with what became of it: accepted, declined, expired, replaced (the organizer changed
the request) or cancelled. Only a pending one can be decided; the closed rows stay, so a
token used again is recognised as used. All functions take an open session and leave
committing to the caller.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mr_engine.core import approval_tokens as tokens
from mr_engine.store.models import Approval, Booking, Mailbox, Secret

PENDING, ACCEPTED, DECLINED = "pending", "accepted", "declined"
EXPIRED, REPLACED, CANCELLED = "expired", "replaced", "cancelled"
SECRET_NAME = "approval_tokens"  # the row migration 0005 creates


class ApprovalError(LookupError):
    """An approval that cannot be decided: unknown, or not pending; the message says why."""


def secret(session: Session) -> bytes:
    row = session.get(Secret, SECRET_NAME)
    if row is None:  # a store older than its migration would be; never in practice
        raise RuntimeError("the approval tokens' secret is missing: run mr-engine db upgrade")
    return row.value


@dataclass(frozen=True)
class Held:
    """What a new approval is about: the booking held and the span it asks for."""

    booking: Booking
    start: dt.datetime
    end: dt.datetime
    message_id: str | None
    now: dt.datetime
    timeout_hours: int


def open_approval(session: Session, held: Held) -> Approval:
    """A new pending approval of ``held.booking``."""
    booking = held.booking
    row = Approval(resource_id=booking.resource_id, booking_id=booking.id, uid=booking.uid,
                   summary=booking.summary, organizer=booking.organizer, start=held.start,
                   end=held.end, requested_at=held.now,
                   expires_at=held.now + dt.timedelta(hours=held.timeout_hours),
                   nonce=secrets.token_hex(16), request_message_id=held.message_id,
                   status=PENDING, decided_by="", comment="")
    session.add(row)
    session.flush()
    return row


def token_of(session: Session, approval: Approval) -> str:
    return tokens.make(secret(session), approval.id, approval.nonce)


def pending_of(session: Session, booking: Booking) -> Approval | None:
    """The booking's pending approval, if it has one."""
    return session.scalar(select(Approval).where(Approval.booking_id == booking.id,
                                                 Approval.status == PENDING))


def close(approval: Approval, status: str, now: dt.datetime, by: str = "",
          comment: str = "") -> None:
    approval.status = status
    approval.decided_at = now
    approval.decided_by = by[:320]
    approval.comment = comment


def by_token(session: Session, token: str) -> Approval | None:
    """The approval a genuine token names, whatever its status; None for a forged one."""
    approval_id = tokens.parse(token)
    approval = session.get(Approval, approval_id) if approval_id is not None else None
    if approval is None or not tokens.genuine(secret(session), token, approval.id,
                                              approval.nonce):
        return None
    return approval


def get(session: Session, approval_id: int) -> Approval:
    approval = session.get(Approval, approval_id)
    if approval is None:
        raise ApprovalError(f"there is no approval {approval_id}")
    return approval


def list_pending(session: Session) -> list[Approval]:
    """Every pending approval, the oldest request first."""
    return list(session.scalars(select(Approval).where(Approval.status == PENDING)
                                .order_by(Approval.requested_at, Approval.id)))


def due(session: Session, now: dt.datetime) -> list[int]:
    """Ids of the pending approvals that expired by ``now``, the earliest first."""
    return list(session.scalars(select(Approval.id)
                                .where(Approval.status == PENDING, Approval.expires_at <= now)
                                .order_by(Approval.expires_at, Approval.id)))


def count_pending(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Approval)
                          .where(Approval.status == PENDING)) or 0


def resource_of(session: Session, approval: Approval) -> Mailbox:
    return session.get_one(Mailbox, approval.resource_id)
