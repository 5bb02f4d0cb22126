"""ORM entities made from rows that ``store.prepared`` statements read, for the hot paths.

The group committer needs the entity of every resource in a batch (the booking services
take a ``Mailbox``). The ORM's own load of one (``select(Mailbox)``) cost 210 µs of CPU, an
eighth of a batch's fixed cost; the same columns read by a prepared statement cost 25, and
an entity made of them and added to the session as persistent 30 more. The values are
those the ORM would load (the statement applies the columns' result processors), and the
entity is one the ORM loaded as far as the session can tell: its attributes committed, no
history, relationships loaded lazily when asked for.
"""

from __future__ import annotations

from typing import Any, Callable, Collection, Generic, Sequence, TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, make_transient_to_detached

from mr_engine.store.models import Mailbox
from mr_engine.store.prepared import PerCount, in_ids

M = TypeVar("M")


class Entities(Generic[M]):
    """Entities of ``model`` (a mapped class with a one-column primary key) by id."""

    def __init__(self, model: type[M]) -> None:
        mapper = self._mapper = inspect(model)
        self.model = model
        # (attribute, column) of every column attribute, in the order the statements read
        self.columns = [(prop.key, prop.columns[0]) for prop in mapper.column_attrs]
        self._keys = tuple(key for key, _ in self.columns)
        (primary,) = mapper.primary_key
        self._id = self._keys.index(mapper.get_property_by_column(primary).key)
        self._rows = PerCount(lambda count: select(*(column for _, column in self.columns))
                              .where(in_ids(primary, count)))

    def by_ids(self, session: Session, ids: Collection[int]) -> dict[int, M]:
        """Those of ``ids`` whose rows exist, in the session. One the session holds already
        is returned as it is, as the ORM's select returns it."""
        return self.by_ids_later(session, ids)()

    def by_ids_later(self, session: Session, ids: Collection[int]) -> Callable[[], dict[int, M]]:
        """``by_ids``, its read sent now and the entities made when the function returned
        is called (in a ``prepared.pipelined`` block: after it). Call it once."""
        if not ids:
            return dict  # the session untouched: no transaction begun for nothing
        session.flush()  # the read below must see this session's changes, as the ORM's would
        read = self._rows.rows_by_ids_later(session.connection(), sorted(ids))
        return lambda: self._in_session(session, read())

    def _in_session(self, session: Session, rows: list[tuple[Any, ...]]) -> dict[int, M]:
        found: dict[int, M] = {}
        for row in rows:
            key = row[self._id]
            held = session.identity_map.get(self._mapper.identity_key_from_primary_key([key]))
            found[key] = held if held is not None else self._added(session, row)
        return found

    def _added(self, session: Session, row: Sequence[Any]) -> M:
        entity = self._mapper.class_manager.new_instance()
        # The instance's dict is where the ORM's loader puts loaded values; committing them
        # (make_transient_to_detached) leaves the entity as if a query had loaded it.
        inspect(entity).dict.update(zip(self._keys, row))
        make_transient_to_detached(entity)
        session.add(entity)
        return entity


MAILBOXES = Entities(Mailbox)  # the committer's batch (``SqlDirectory.mailboxes``), db.py's lock
