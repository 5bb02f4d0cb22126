"""The outbound queue (table ``outbox``): enqueueing, claiming, recording attempts, managing.

Everything that sends mail writes a row here in the same transaction as what caused it
(Postfix-style: durable first, sent later), and the relay (``delivery/relay.py``) drains it.
All functions take an open session and leave committing to the caller.

Claiming is what keeps several relay processes from sending one message twice: the row is
picked with ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL; on SQLite the claim transaction
is serialized by BEGIN IMMEDIATE) and stamped with a lease that the caller commits before it
talks SMTP. A worker that dies mid-send leaves the lease behind; once it has expired the
message is claimed again (at-least-once, the usual MTA trade-off).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Sequence

from sqlalchemy import bindparam, delete as delete_rows, func, insert, or_, select, update
from sqlalchemy.orm import Session

from mr_engine.store.models import OutboundMessage
from mr_engine.store.prepared import PerCount, Prepared, id_params, in_ids
from mr_engine.core.outgoing import parse_mailbox

QUEUED, SENT, FAILED = "queued", "sent", "failed"
# Backoff after a temporary failure: first retry after RETRY_BASE, then doubling, capped.
RETRY_BASE = dt.timedelta(seconds=20)
RETRY_MAX = dt.timedelta(hours=1)


class QueueError(LookupError):
    """A queue operation on a message that does not exist or is in the wrong state."""


def _check_address(address: str) -> str:
    """The address as the relay sends it: ASCII with an A-label domain (IDNA) whenever the
    local part is ASCII, else UTF-8 for SMTPUTF8 (RFC 6531 §3.3); "" stays the null sender.

    Stored comma-separated and written into SMTP commands: parse_mailbox refuses
    separators, spaces and CR/LF (AddressError, a ValueError).
    """
    return parse_mailbox(address).addr_spec if address else ""


# Every reply and auto-reply goes through here.
_COLUMNS = ["sender", "recipients", "subject", "content", "status", "attempts", "created_at",
            "next_attempt_at", "last_error"]
_INSERT = Prepared(insert(OutboundMessage).returning(OutboundMessage.id), _COLUMNS)
_INSERT_ROWS = Prepared(insert(OutboundMessage), _COLUMNS)
_DEFERRED = "outbox rows deferred"  # session.info: the rows enqueue() holds for write_deferred


def enqueue(session: Session, *, sender: str, recipients: Sequence[str], content: bytes,
            subject: str, now: dt.datetime) -> int | None:
    """Queue ``content`` for ``recipients``; ``sender`` "" is the null sender ``<>``.

    Written in the caller's transaction, not committed: it becomes visible to the relay
    together with whatever caused it, or not at all. Returns the message's id; None in a
    session that ``defer`` holds the rows of (their ids are given when they are written).
    Inside a savepoint the row is written at once even so, so that rolling the savepoint
    back takes it along (the approval by mail answers in one of its own).
    """
    rcpts = [_check_address(r.strip()) for r in recipients]
    if not rcpts or not all(rcpts):
        raise ValueError("an outbound message needs at least one recipient")
    row = {"sender": _check_address(sender.strip()), "recipients": ",".join(rcpts),
           "subject": subject, "content": content, "status": QUEUED, "attempts": 0,
           "created_at": now, "next_attempt_at": now, "last_error": ""}
    held = session.info.get(_DEFERRED)
    if held is not None and session.get_nested_transaction() is None:
        held.append(row)
        return None
    return _INSERT.rows(session.connection(), row)[0][0]


def defer(session: Session) -> None:
    """From now on ``enqueue`` holds the session's rows for ``write_deferred``: the group
    committer's first run of a batch writes them in one statement (on PostgreSQL one round
    trip), not one a reply. Only where nothing reads the queue back before they are written
    and a failure rolls the whole transaction back (that run's does)."""
    session.info[_DEFERRED] = []


def write_deferred(session: Session) -> None:
    """Write the rows held since ``defer``; enqueue writes at once again."""
    rows = session.info.pop(_DEFERRED, None)
    if rows:
        _INSERT_ROWS.run_many(session.connection(), rows)


def recipients_of(row: OutboundMessage) -> list[str]:
    return _split(row.recipients)


def _split(recipients: str) -> list[str]:
    """The addresses of a ``recipients`` column (comma-joined)."""
    return [r for r in recipients.split(",") if r]


# --- management (mr-engine queue) ------------------------------------------------------------

@dataclass(frozen=True)
class QueueEntry:
    id: int
    sender: str
    recipients: list[str]
    subject: str
    status: str
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    last_error: str

    @classmethod
    def of(cls, row: OutboundMessage) -> "QueueEntry":
        return cls(row.id, row.sender, recipients_of(row), row.subject, row.status,
                   row.attempts, row.created_at, row.next_attempt_at, row.last_error)


def list_queue(session: Session, status: str | None = None) -> list[QueueEntry]:
    stmt = select(OutboundMessage).order_by(OutboundMessage.id)
    if status:
        stmt = stmt.where(OutboundMessage.status == status)
    return [QueueEntry.of(row) for row in session.scalars(stmt)]


def count_by_status(session: Session) -> dict[str, int]:
    """How many messages the queue holds in each status (every status, zero included)."""
    counts = dict.fromkeys((QUEUED, SENT, FAILED), 0)
    stmt = select(OutboundMessage.status, func.count()).group_by(OutboundMessage.status)
    counts.update({status: count for status, count in session.execute(stmt)})
    return counts


def _get(session: Session, message_id: int) -> OutboundMessage:
    row = session.get(OutboundMessage, message_id)
    if row is None:
        raise QueueError(f"message {message_id} is not in the queue")
    return row


def retry(session: Session, message_id: int, now: dt.datetime) -> QueueEntry:
    """A failed or queued message becomes queued and due now (a sent one is refused)."""
    row = _get(session, message_id)
    if row.status == SENT:
        raise QueueError(f"message {message_id} was already sent")
    row.status, row.next_attempt_at = QUEUED, now
    session.flush()
    return QueueEntry.of(row)


def retry_all(session: Session, now: dt.datetime) -> int:
    """Every failed or queued message becomes queued and due now; returns how many."""
    result = session.execute(
        update(OutboundMessage).where(OutboundMessage.status.in_((QUEUED, FAILED)))
        .values(status=QUEUED, next_attempt_at=now))
    return result.rowcount


def make_all_due(session: Session, now: dt.datetime) -> int:
    """Queued messages waiting for their retry time become due now (``postqueue -f``)."""
    result = session.execute(
        update(OutboundMessage)
        .where(OutboundMessage.status == QUEUED, OutboundMessage.next_attempt_at > now)
        .values(next_attempt_at=now))
    return result.rowcount


def delete(session: Session, message_id: int) -> None:
    session.delete(_get(session, message_id))
    session.flush()


def prune_sent(session: Session, queued_before: dt.datetime) -> int:
    """Drop sent messages queued before ``queued_before`` (``queue_keep_sent``); how many.

    Counted from created_at: a row keeps no time of its sending, and the relay gives up
    after ``queue_lifetime`` anyway, so a row queued that long ago was sent at least
    ``queue_keep_sent - queue_lifetime`` ago.
    """
    result = session.execute(delete_rows(OutboundMessage).where(
        OutboundMessage.status == SENT, OutboundMessage.created_at < queued_before))
    return result.rowcount


# --- relay side: claim, then record the attempt ------------------------------------------------

@dataclass(frozen=True)
class RelayJob:
    """A claimed message, detached from the session that claimed it."""

    id: int
    sender: str
    recipients: tuple[str, ...]
    content: bytes
    attempts: int  # including the one now being made
    created_at: dt.datetime


# The relay's statements, prepared (store.prepared: SQLAlchemy's execution of a Core
# statement cost more CPU than SQLite's running it) and run on the session's connection:
# plain values, no ORM objects. An id list longer than PerCount's limit goes in parts.
_T = OutboundMessage.__table__
_DUE_SELECT = (select(_T.c.id, _T.c.sender, _T.c.recipients, _T.c.content, _T.c.attempts,
                      _T.c.created_at)
               .where(_T.c.status == QUEUED, _T.c.next_attempt_at <= bindparam("now"),
                      or_(_T.c.lease_until.is_(None), _T.c.lease_until <= bindparam("now")))
               .order_by(_T.c.next_attempt_at, _T.c.id).limit(bindparam("limit")))
_DUE = Prepared(_DUE_SELECT)
# Concurrent claimers skip rows another transaction is claiming instead of waiting (SQLite
# has no FOR UPDATE: its claim transaction is serialized by BEGIN IMMEDIATE).
_DUE_LOCKED = Prepared(_DUE_SELECT.with_for_update(skip_locked=True))
# Counted when started, so a message that keeps killing its worker still ages out.
_STAMP = PerCount(lambda count: update(_T).where(in_ids(_T.c.id, count)).values(
    attempts=_T.c.attempts + 1, lease_owner=bindparam("owner"), lease_until=bindparam("until")))
_HELD = PerCount(lambda count: select(_T.c.id).where(in_ids(_T.c.id, count),
                                                     _T.c.lease_owner == bindparam("owner")))
_SENT = PerCount(lambda count: update(_T).where(in_ids(_T.c.id, count)).values(
    status=SENT, last_error="", lease_owner=None, lease_until=None))
_RELEASE = PerCount(lambda count: update(_T).where(
    in_ids(_T.c.id, count), _T.c.lease_owner == bindparam("owner")).values(
    attempts=_T.c.attempts - 1, lease_owner=None, lease_until=None))


def claim(session: Session, owner: str, now: dt.datetime,
          lease: dt.timedelta, limit: int = 1) -> list[RelayJob]:
    """Take up to ``limit`` due messages for ``owner`` until ``now + lease``, oldest first.

    Several at once: under load, one write transaction per message made the relay wait its
    turn behind the delivery committer once for every reply. Two statements for the batch
    (read the due rows, stamp them all), no ORM objects: the relay only needs the values.
    """
    conn = session.connection()
    due = _DUE if conn.dialect.name == "sqlite" else _DUE_LOCKED
    rows = due.rows(conn, {"now": now, "limit": limit})
    for statement, part in _STAMP.chunks([row[0] for row in rows]):
        statement.run(conn, {**id_params(part), "owner": owner, "until": now + lease})
    return [RelayJob(row_id, sender, tuple(_split(recipients)), content, attempts + 1, created)
            for row_id, sender, recipients, content, attempts, created in rows]


def release(session: Session, ids: Sequence[int], owner: str) -> None:
    """Gives back those of ``ids`` that ``owner`` claimed and did not attempt: due again at
    once for any relay, their claim's attempt not counted. One whose lease another worker
    has taken over meanwhile is left to it."""
    if not ids:
        return
    conn = session.connection()
    for statement, part in _RELEASE.chunks(sorted(ids)):
        statement.run(conn, {**id_params(part), "owner": owner})


def retry_at(attempts: int, created_at: dt.datetime, now: dt.datetime,
             lifetime: dt.timedelta) -> dt.datetime | None:
    """When to try again after the ``attempts``-th attempt failed temporarily; None = give up.

    Exponential backoff (RETRY_BASE, doubling, at most RETRY_MAX apart), never past the end
    of the message's lifetime, so the last attempt is made right at ``created_at + lifetime``.
    """
    deadline = created_at + lifetime
    if now >= deadline:
        return None
    delay = min(RETRY_BASE * 2 ** min(max(attempts - 1, 0), 20), RETRY_MAX)
    return min(now + delay, deadline)


@dataclass(frozen=True)
class SendOutcome:
    """What the smarthost said, per recipient: accepted, refused for now, refused for good."""

    accepted: tuple[str, ...] = ()
    temporary: dict[str, str] = field(default_factory=dict)
    permanent: dict[str, str] = field(default_factory=dict)
    reply: str = ""  # the server's answer to the message of the accepted ones (after DATA)


@dataclass(frozen=True)
class AttemptResult:
    """One row's state after an attempt (an attempt may split a message into several rows)."""

    id: int
    status: str
    recipients: tuple[str, ...]
    error: str = ""


def _summary(errors: dict[str, str]) -> str:
    distinct = set(errors.values())
    if len(distinct) == 1:
        return distinct.pop()
    return "; ".join(f"{rcpt}: {err}" for rcpt, err in errors.items())


def _fates(job: RelayJob, outcome: SendOutcome, now: dt.datetime,
           lifetime: dt.timedelta) -> list[dict[str, Any]]:
    fates = []
    if outcome.accepted:
        refused = {**outcome.temporary, **outcome.permanent}
        fates.append(dict(status=SENT, recipients=outcome.accepted,
                          last_error=f"refused: {_summary(refused)}" if refused else ""))
    if outcome.temporary:
        when = retry_at(job.attempts, job.created_at, now, lifetime)
        error = _summary(outcome.temporary)
        if when is None:
            fates.append(dict(status=FAILED, recipients=tuple(outcome.temporary),
                              last_error=f"expired after {job.attempts} attempts: {error}"))
        else:
            fates.append(dict(status=QUEUED, recipients=tuple(outcome.temporary),
                              last_error=error, next_attempt_at=when))
    if outcome.permanent:
        fates.append(dict(status=FAILED, recipients=tuple(outcome.permanent),
                          last_error=_summary(outcome.permanent)))
    return fates


def record(session: Session, job: RelayJob, owner: str, outcome: SendOutcome, now: dt.datetime,
           lifetime: dt.timedelta) -> list[AttemptResult]:
    """Store the attempt's outcome and release the lease.

    Partial refusal: every recipient ends up in exactly one row whose status is its own fate.
    The message's row keeps the first non-empty group (accepted → sent, else refused for now →
    queued, else refused for good → failed); each other group becomes a copy of the message
    with the same created_at (so the same lifetime) and attempt count.
    """
    row = session.get(OutboundMessage, job.id)
    if row is None or row.lease_owner != owner:
        return []  # deleted meanwhile, or our lease expired and another worker took it over
    results = []
    for i, fate in enumerate(_fates(job, outcome, now, lifetime)):
        target = row if i == 0 else OutboundMessage(
            sender=row.sender, subject=row.subject, content=row.content, attempts=row.attempts,
            created_at=row.created_at, next_attempt_at=now)
        target.status, target.last_error = fate["status"], fate["last_error"]
        target.recipients = ",".join(fate["recipients"])
        target.next_attempt_at = fate.get("next_attempt_at", target.next_attempt_at)
        target.lease_owner = target.lease_until = None
        session.add(target)
        session.flush()
        results.append(AttemptResult(target.id, target.status, fate["recipients"], target.last_error))
    return results


def _all_accepted(job: RelayJob, outcome: SendOutcome) -> bool:
    return outcome.accepted == job.recipients and not outcome.temporary \
        and not outcome.permanent


def record_all(session: Session, attempts: Sequence[tuple[RelayJob, SendOutcome]], owner: str,
               now: dt.datetime, lifetime: dt.timedelta) -> list[list[AttemptResult]]:
    """``record`` for a pass's batch, in order: the messages every recipient took (the
    common case) in two statements for the whole batch, the others one by one."""
    held = _mark_sent(session, [job.id for job, o in attempts if _all_accepted(job, o)], owner)

    def recorded(job: RelayJob, outcome: SendOutcome) -> list[AttemptResult]:
        if not _all_accepted(job, outcome):
            return record(session, job, owner, outcome, now, lifetime)
        return [AttemptResult(job.id, SENT, job.recipients)] if job.id in held else []

    return [recorded(job, outcome) for job, outcome in attempts]


def _mark_sent(session: Session, ids: list[int], owner: str) -> set[int]:
    """Marks sent those of ``ids`` whose lease is still ``owner``'s; returns them (the rest
    were deleted meanwhile, or another worker took the expired lease over)."""
    if not ids:
        return set()
    conn = session.connection()
    held = {row[0] for row in _HELD.rows_by_ids(conn, ids, {"owner": owner})}
    for statement, part in _SENT.chunks(sorted(held)):
        statement.run(conn, id_params(part))
    return held
