"""``models.UTCDateTime``: its SQLite conversions, each done in one function, give what
SQLAlchemy's two steps (the decorator's, then the DATETIME type's) give, and what is
written reads back as the same instant."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import TypeDecorator

from mr_engine.store.models import UTCDateTime

_SQLITE = sqlite.dialect()
_TYPE = UTCDateTime().dialect_impl(_SQLITE)
_ZONES = st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=-9, minutes=-30)),
                          dt.timezone(dt.timedelta(hours=14))])
_MOMENTS = st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(8999, 12, 30),
                        timezones=_ZONES)


@settings(max_examples=500, deadline=None)
@given(_MOMENTS)
def test_bound_as_sqlalchemys_two_steps_bind_it(moment: dt.datetime) -> None:
    two_steps = TypeDecorator.bind_processor(_TYPE, _SQLITE)
    assert _TYPE.bind_processor(_SQLITE)(moment) == two_steps(moment)


@settings(max_examples=500, deadline=None)
@given(_MOMENTS)
def test_read_as_sqlalchemys_two_steps_read_it(moment: dt.datetime) -> None:
    stored = _TYPE.bind_processor(_SQLITE)(moment)
    two_steps = TypeDecorator.result_processor(_TYPE, _SQLITE, None)
    read = _TYPE.result_processor(_SQLITE, None)(stored)
    assert read == two_steps(stored) == moment and read.tzinfo is dt.timezone.utc


@pytest.mark.parametrize("stored", ["2026-03-10 09:00:00", "2026-03-10 09:00:00.5",
                                    "2026-03-10", "2026-03-10T09:00", "2026-03-10 09:00:00+02:00"])
def test_other_spellings_read_as_sqlalchemy_reads_them(stored: str) -> None:
    # CURRENT_TIMESTAMP writes no fraction; a hand-edited row may have a short one, a bare
    # date, or an offset of its own (which the DATETIME type's parse keeps, and UTC replaces).
    two_steps = TypeDecorator.result_processor(_TYPE, _SQLITE, None)
    read = _TYPE.result_processor(_SQLITE, None)(stored)
    assert read == two_steps(stored) and read.tzinfo is dt.timezone.utc
    assert read.replace(tzinfo=None) == dt.datetime.fromisoformat(stored).replace(tzinfo=None)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)))
def test_a_naive_value_of_the_driver_reads_as_that_instant_in_utc(naive: dt.datetime) -> None:
    # PostgreSQL's driver gives TIMESTAMP WITHOUT TIME ZONE as a naive datetime.
    read = UTCDateTime().process_result_value(naive, None)
    assert read == naive.replace(tzinfo=dt.timezone.utc) and read.tzinfo is dt.timezone.utc


def test_none_and_naive_values() -> None:
    assert _TYPE.bind_processor(_SQLITE)(None) is None
    assert _TYPE.result_processor(_SQLITE, None)(None) is None
    with pytest.raises(ValueError, match="naive datetime"):
        _TYPE.bind_processor(_SQLITE)(dt.datetime(2026, 3, 10, 9))


def test_a_real_sqlite_database_stores_the_instant(tmp_path) -> None:
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", UTCDateTime()))
    engine = create_engine(f"sqlite:///{tmp_path}/t.db")
    table.metadata.create_all(engine)
    moment = dt.datetime(2026, 3, 10, 10, 0, 0, 7, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    with engine.begin() as conn:
        conn.execute(insert(table), {"at": moment})
        assert conn.execute(text("SELECT at FROM t")).scalar() == "2026-03-10 09:00:00.000007"
        assert conn.execute(select(table.c.at)).scalar() == moment
    engine.dispose()
