"""``store.pg_wire``: on PostgreSQL ``store.prepared``'s statements go on libpq's pipeline
directly; prepared once a session, typed as psycopg types them, never in psycopg's way, and
waiting without the GIL. (``tests/test_prepared.py`` checks the values, transactions and
errors on both stores.)"""

from __future__ import annotations

import ctypes
import gc
import threading
import time
import weakref

import psycopg
import pytest
from sqlalchemy import (BigInteger, Boolean, Integer, String, bindparam, cast, func,
                        literal_column, select, table)
from sqlalchemy.exc import DataError

from mr_engine.store.models import Mailbox
from mr_engine.store import pg_send, pg_wire
from mr_engine.store.pg_wire import numbered
from mr_engine.store.prepared import Prepared, pipelined

_TYPED = Prepared(select(bindparam("flag", type_=Boolean), bindparam("n", type_=BigInteger)))
_COUNT = Prepared(select(func.count()).select_from(Mailbox).where(Mailbox.id > bindparam("n")))
_SLEEP = Prepared(select(func.pg_sleep(bindparam("seconds"))))
_NUMBER = Prepared(select(cast(bindparam("text", type_=String), Integer)))


@pytest.fixture
def pg(db):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the wire is PostgreSQL's")
    return db


def test_pyformat_is_numbered_in_order_of_first_use():
    text, names = numbered("SELECT %(b)s, %(a)s, %(b)s WHERE x LIKE 'a%%'")
    assert text == b"SELECT $1, $2, $1 WHERE x LIKE 'a%'" and names == ("b", "a")


def test_parameters_are_typed_as_psycopg_types_them(pg):
    # A boolean in a SELECT list has no cast. psycopg types an int by its size; one
    # statement serves every size.
    with pg.engine.connect() as conn:
        assert _TYPED.rows(conn, {"flag": True, "n": 5}) == [(True, 5)]
        assert _TYPED.rows(conn, {"flag": False, "n": 2**40}) == [(False, 2**40)]
        assert _TYPED.rows(conn, {"flag": None, "n": 7}) == [(None, 7)]
        assert len(_prepared(conn)) == 2  # with a boolean, and with a NULL of no type


def test_a_connection_keeps_a_bounded_set_of_statements(pg, monkeypatch):
    monkeypatch.setattr(pg_wire, "MOST_PREPARED", 3)
    counts = [Prepared(select(func.count()).select_from(Mailbox)  # five texts
                       .where(Mailbox.id > bindparam("n") + literal_column(str(i))))
              for i in range(5)]
    with pg.engine.connect() as conn:
        for _ in range(2):  # the second time round, the first ones were dropped
            assert [count.rows(conn, {"n": 0}) for count in counts] == [[(0,)]] * 5
            assert len(_prepared(conn)) <= 3
            on_server = conn.execute(select(func.count()).select_from(
                table("pg_prepared_statements"))).scalar()
            assert on_server <= 3


def _prepared(conn) -> dict:
    return pg_wire.Wire.of(conn.connection.driver_connection).names


def test_its_statements_outlive_rollbacks_and_sqlalchemys_own(pg):
    # psycopg deallocates every prepared statement of the session at a rollback once it has
    # prepared one of its own (it would at the sixth run of a statement in a transaction):
    # it prepares none here.
    with pg.engine.connect() as conn:
        for _ in range(3):
            assert _COUNT.rows(conn, {"n": 0}) == [(0,)]
            for _ in range(8):
                conn.execute(select(Mailbox.id).where(Mailbox.id == 0)).all()
            conn.rollback()


def test_sqlalchemys_statement_in_a_block_runs_after_what_was_queued(pg):
    with pg.engine.connect() as conn:
        with pipelined(conn):
            first = _COUNT.rows_later(conn, {"n": -1})
            # psycopg's turn: what the block queued is sent and read first.
            assert conn.execute(select(func.count()).select_from(Mailbox)).scalar() == 0
            second = _COUNT.rows_later(conn, {"n": -2})
        assert first() == second() == [(0,)]


def test_a_wait_for_the_server_lets_other_threads_run(pg):
    counted = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counted[0] += 1

    def counted_while(wait) -> int:
        before = counted[0]
        wait()
        return counted[0] - before
    with pg.engine.connect() as conn:
        _SLEEP.rows(conn, {"seconds": 0})
        thread = threading.Thread(target=count)
        thread.start()
        try:
            free = counted_while(lambda: time.sleep(0.5))  # a wait that lets go of the GIL
            during = counted_while(lambda: _SLEEP.rows(conn, {"seconds": 0.5}))
        finally:
            stop.set()
            thread.join()
    # Held, the GIL would leave the other thread the moments between two calls into libpq.
    assert during > free / 4, (during, free)


def test_a_connection_closed_leaves_no_wire_behind(pg):
    with pg.engine.connect() as conn:
        assert _COUNT.rows(conn, {"n": 0}) == [(0,)]
        driver = weakref.ref(conn.connection.driver_connection)
        conn.invalidate()  # closed, and dropped by the pool
    gc.collect()
    assert driver() is None


def test_an_error_of_the_block_itself_is_the_one_raised(pg):
    with pg.engine.connect() as conn:
        with pytest.raises(RuntimeError), conn.begin(), pipelined(conn):
            _NUMBER.rows_later(conn, {"text": "x"})  # fails at the sync the block ends with
            raise RuntimeError("the block's own")
        assert _COUNT.rows(conn, {"n": 0}) == [(0,)]  # rolled back: the connection goes on


def test_outside_a_block_a_statement_runs_where_it_is_asked(pg):
    # As on SQLite, and as psycopg ran it: its error comes there, not where it is read.
    with pg.engine.connect() as conn, conn.begin():
        with pytest.raises(DataError):
            _NUMBER.rows_later(conn, {"text": "x"})


def test_sends_go_to_psycopgs_own_libpq_without_the_gil():
    # psycopg's C wrappers keep the GIL through a send (pg_send's docstring); ctypes does not,
    # and must then call the very library psycopg runs on, not another libpq.
    if pg_send.pq.__impl__ == "python":
        pytest.skip("psycopg calls libpq through ctypes itself")
    lib = pg_send._libpq()
    assert lib is not None
    assert isinstance(lib, ctypes.CDLL) and not isinstance(lib, ctypes.PyDLL)  # PyDLL keeps it
    assert lib.PQlibVersion() == pg_send.pq.version()
    with open("/proc/self/maps") as maps:
        assert lib._name in {line.split()[-1] for line in maps}


def test_a_send_on_a_closed_connection_is_an_error_not_a_crash(pg):
    with pg.engine.connect() as conn:
        pgconn = conn.connection.driver_connection.pgconn
        conn.invalidate()  # closed: libpq's PGconn is gone
        for send in (pg_send.pipeline_sync, pg_send.flush):
            with pytest.raises(psycopg.OperationalError):
                send(pgconn)
