"""Out-of-office state per mailbox (table ``oof_settings``) and the per-sender reply log.

The state is what ``kopano-set-oof`` edits: enabled, subject, body and an optional period
[start, until] in UTC (an open bound means "from now on" / "until switched off"). The log
(table ``oof_log``) remembers when each sender last got an auto-reply from a mailbox, so a
sender gets at most one per interval (RFC 3834 §2). Functions take an open session and leave
committing to the caller.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Iterable

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from mr_engine.store.prepared import PerCount, in_ids
from mr_engine.store.claims import claim
from mr_engine.store.directories import DirectoryError
from mr_engine.store.models import Mailbox, OutOfOffice, OutOfOfficeLog

_LOG: Table = OutOfOfficeLog.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class OofState:
    enabled: bool = False
    subject: str = ""
    body: str = ""
    start: dt.datetime | None = None  # UTC; None = no lower bound
    until: dt.datetime | None = None  # UTC; None = no upper bound

    def active(self, now: dt.datetime) -> bool:
        """Enabled and ``now`` inside [start, until] (both inclusive, either may be open)."""
        return (self.enabled
                and (self.start is None or self.start <= now)
                and (self.until is None or now <= self.until))


_FIELDS = tuple(f.name for f in fields(OofState))


def _state(row: OutOfOffice | None) -> OofState:
    if row is None:
        return OofState()
    return OofState(row.enabled, row.subject, row.body, row.start, row.until)


# Built once: this runs for every batch of deliveries, and statement construction costs
# more than the query itself (profiled under the benchmark's load).
_GET = PerCount(lambda count: select(OutOfOffice.mailbox_id, OutOfOffice.enabled,
                                     OutOfOffice.subject, OutOfOffice.body, OutOfOffice.start,
                                     OutOfOffice.until)
                .where(in_ids(OutOfOffice.mailbox_id, count)))


def get_oof_many(session: Session, mailbox_ids: Iterable[int]) -> dict[int, OofState]:
    """The state of each mailbox that has one set (the others have the default)."""
    return get_oof_many_later(session, mailbox_ids)()


def get_oof_many_later(session: Session,
                       mailbox_ids: Iterable[int]) -> Callable[[], dict[int, OofState]]:
    """``get_oof_many``, read when the function returned is called (in a
    ``prepared.pipelined`` block: sent with the block's other statements)."""
    ids = sorted(set(mailbox_ids))
    if not ids:
        return dict
    session.flush()  # the Core read below must see this session's pending changes
    read = _GET.rows_by_ids_later(session.connection(), ids)
    return lambda: {row[0]: OofState(*row[1:]) for row in read()}


def get_oof(session: Session, mailbox: Mailbox) -> OofState:
    return get_oof_many(session, [mailbox.id]).get(mailbox.id, OofState())


def _validate(state: OofState) -> None:
    for bound in (state.start, state.until):
        if bound is not None and bound.tzinfo is None:
            raise ValueError("out-of-office bounds must be aware datetimes")
    if state.start is not None and state.until is not None and state.until < state.start:
        raise DirectoryError("the out-of-office period ends before it starts")


def set_oof(session: Session, mailbox: Mailbox, **changes: Any) -> OofState:
    """Change the given fields (enabled, subject, body, start, until); returns the new state.

    ``None`` for start or until clears that bound; the others keep their values.
    """
    unknown = set(changes) - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown out-of-office field {sorted(unknown)[0]}")
    row = session.get(OutOfOffice, mailbox.id)
    state = replace(_state(row), **changes)
    _validate(state)
    if row is None:
        row = OutOfOffice(mailbox_id=mailbox.id)
        session.add(row)
    for name in _FIELDS:
        setattr(row, name, getattr(state, name))
    session.flush()
    return state


# --- the per-sender log ---------------------------------------------------------------------

def _key(sender: str) -> str:
    # Case-insensitive, and bounded to the column's size (RFC 5321 §4.5.3.1.3: 256 octets).
    return sender.strip().lower()[:320]


def _seconds(interval: dt.timedelta | int) -> dt.timedelta:
    return interval if isinstance(interval, dt.timedelta) else dt.timedelta(seconds=interval)


def claim_reply(session: Session, mailbox: Mailbox, sender: str, now: dt.datetime,
                interval: dt.timedelta | int) -> bool:
    """Record a reply unless one was sent within ``interval``; True if the caller may send.

    One statement (``claims``), so two deliveries racing on PostgreSQL cannot both win.
    """
    values = {"mailbox_id": mailbox.id, "sender": _key(sender), "last_sent_at": now}
    return claim(session.connection(), _LOG, values, "last_sent_at", now - _seconds(interval))
