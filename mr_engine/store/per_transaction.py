"""What a transaction has done already: a record kept in the Session, by (sub)transaction.

Some work holds until the transaction ends, so it is needed once a transaction: a resource's
row lock (PostgreSQL's ``SELECT ... FOR UPDATE``), its ``calendar_version`` raise (readers see
it only with the commit). What a transaction or one enclosing it has done need not be done
again inside it. A savepoint that is rolled back undoes what it did (PostgreSQL releases
the row locks taken in it), and its record goes with it: after it, the work is done again.
Records are weakly keyed by SQLAlchemy's SessionTransaction, so they end with it.

A value can be held too (``hold``, ``take``): something read ahead for a later step of the
same (sub)transaction, taken once, and only in that one.
"""

from __future__ import annotations

import weakref
from typing import Hashable

from sqlalchemy.orm import Session, SessionTransaction

_RECORDS = "mr_engine per-transaction records"  # session.info: kind -> transaction -> keys
_HELD = "mr_engine per-transaction values"  # session.info: kind -> (transaction, value)


def done(session: Session, kind: str, key: Hashable) -> bool:
    """Whether ``key`` of ``kind`` was noted in the current (sub)transaction or one
    enclosing it."""
    records = _records(session, kind)
    transaction: SessionTransaction | None = _current(session)
    while transaction is not None:
        if key in records.get(transaction, ()):
            return True
        transaction = transaction.parent
    return False


def note(session: Session, kind: str, key: Hashable) -> None:
    """``key`` of ``kind`` is done, for the current (sub)transaction (call it once done)."""
    _records(session, kind).setdefault(_current(session), set()).add(key)


def hold(session: Session, kind: str, value: object) -> None:
    """Keep ``value`` of ``kind`` for the current (sub)transaction, replacing one held."""
    session.info.setdefault(_HELD, {})[kind] = (weakref.ref(_current(session)), value)


def take(session: Session, kind: str) -> object | None:
    """The value of ``kind`` held, no longer held (whichever transaction held it); None
    when none is, or when it was held for another (sub)transaction than the current one."""
    held = session.info.get(_HELD, {}).pop(kind, None)
    if held is None:
        return None
    return held[1] if held[0]() is _current(session) else None


def _records(session: Session, kind: str) -> weakref.WeakKeyDictionary:
    by_kind = session.info.setdefault(_RECORDS, {})
    return by_kind.setdefault(kind, weakref.WeakKeyDictionary())


def _current(session: Session) -> SessionTransaction:
    session.connection()  # begins the session's transaction if need be
    current = session.get_nested_transaction() or session.get_transaction()
    assert current is not None
    return current
