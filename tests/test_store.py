"""The schema: alembic migrations from empty to head on both databases, matching the models."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3

import pytest

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, event, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from mr_engine.store.db import HEAD_REVISION, MIGRATIONS, alembic_config, current_revision, \
    make_engine, open_database, stored_revision, upgrade
from mr_engine.store.models import Base

from mr_engine.testing import commands
from mr_engine.testing.paths import BIN


def head_revision(engine) -> str:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def test_the_head_revision_the_store_knows_is_alembics(tmp_path):
    """A new migration must move ``HEAD_REVISION`` too, or stores would stop one short."""
    engine = make_engine(f"sqlite:///{tmp_path}/head.db", pool_size=1)
    assert stored_revision(engine) is None
    assert HEAD_REVISION == head_revision(engine)
    upgrade(engine)
    assert stored_revision(engine) == current_revision(engine) == HEAD_REVISION
    engine.dispose()


def test_db_upgrade_from_empty_to_head(tmp_path, pg_server):
    admin, url, _ = pg_server
    with admin.connect() as conn:
        conn.execute(text('DROP DATABASE IF EXISTS "mr_empty"'))
        conn.execute(text('CREATE DATABASE "mr_empty"'))
    urls = [f"sqlite:///{tmp_path}/empty.db",
            make_url(url).set(database="mr_empty").render_as_string(hide_password=False)]
    for db_url in urls:
        engine = make_engine(db_url, pool_size=1)
        assert current_revision(engine) is None
        out = commands.run([str(BIN / "mr-engine"), "db", "upgrade"],
                           env={"MR_ENGINE_DATABASE_URL": db_url}, capture_output=True,
                           text=True, check=True).stdout
        assert "store at revision" in out
        assert current_revision(engine) == head_revision(engine)
        assert {"mailboxes", "stores", "messages", "bookings", "occurrences", "outbox",
                "oof_settings", "oof_log"} <= set(inspect(engine).get_table_names())
        # A second upgrade is a no-op.
        commands.run([str(BIN / "mr-engine"), "db", "upgrade"],
                     env={"MR_ENGINE_DATABASE_URL": db_url}, check=True, capture_output=True)
        engine.dispose()


def test_models_match_the_migrations(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sqlite_store_runs_in_wal_mode_with_full_sync_and_foreign_keys(tmp_path):
    database = open_database(f"sqlite:///{tmp_path}/x.db")
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    database.dispose()
    assert MIGRATIONS.is_dir()


def test_a_write_transaction_that_finds_sqlite_locked_fails_as_sqlalchemys_error(tmp_path):
    # Another writer holds SQLite's own lock (a raw connection, so not our writer lock):
    # BEGIN IMMEDIATE, sent on the DBAPI connection, times out as OperationalError.
    url = f"sqlite:///{tmp_path}/store.db"
    db = open_database(url)
    db.engine.dispose()
    event.listen(db.engine, "connect",
                 lambda dbapi_conn, _: dbapi_conn.execute("PRAGMA busy_timeout=50"))
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="database is locked"):
            with db.write() as session:
                session.connection()  # the transaction begins
    finally:
        other.close()
        db.dispose()


def test_sqlite_writers_lock_file_gets_the_databases_mode_and_owner(tmp_path):
    path = tmp_path / "x.db"
    database = open_database(f"sqlite:///{path}")
    database.dispose()
    lock = tmp_path / "x.db-writer.lock"
    lock.unlink(missing_ok=True)
    os.chmod(path, 0o640)
    if os.geteuid() == 0:  # as when an administrator runs kopano-cli as root
        os.chown(path, 4321, 4321)
    database = open_database(f"sqlite:///{path}", auto_upgrade=False)
    with database.write() as session:
        session.connection()
    database.dispose()
    info = lock.stat()
    assert info.st_mode & 0o777 == 0o640 & ~_umask()
    if os.geteuid() == 0:
        assert (info.st_uid, info.st_gid) == (4321, 4321)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_symlinked_writer_lock_is_not_followed_and_writes_go_on(tmp_path):
    path = tmp_path / "x.db"
    open_database(f"sqlite:///{path}").dispose()
    target = tmp_path / "precious"
    target.write_text("keep")
    os.chmod(target, 0o600)
    lock = tmp_path / "x.db-writer.lock"
    lock.unlink(missing_ok=True)
    lock.symlink_to(target)
    if os.geteuid() == 0:  # root would give a file it created to the database's owner
        os.chown(path, 4321, 4321)
    database = open_database(f"sqlite:///{path}", auto_upgrade=False)
    with database.write() as session:  # SQLite's own locking still keeps writers apart
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    database.dispose()
    assert target.read_text() == "keep" and target.stat().st_uid == os.geteuid()


def test_a_writer_lock_held_too_long_is_given_up_for_sqlites_own(tmp_path, monkeypatch):
    import fcntl

    from mr_engine.store import db as dbmod

    path = tmp_path / "x.db"
    open_database(f"sqlite:///{path}").dispose()
    holder = os.open(tmp_path / "x.db-writer.lock", os.O_RDONLY | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another descriptor: a stopped writer process
    monkeypatch.setattr(dbmod.FileLock, "WAIT", 0.2)
    database = open_database(f"sqlite:///{path}", auto_upgrade=False)
    try:
        with database.write() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
    finally:
        database.dispose()
        os.close(holder)


def test_writers_of_two_stores_on_one_file_hand_the_lock_over_without_timeouts(tmp_path,
                                                                              caplog):
    import threading
    import time

    url = f"sqlite:///{tmp_path / 'x.db'}"
    open_database(url).dispose()
    # Two Database objects: two lock descriptors and helpers, as two worker processes have.
    stores = [open_database(url, auto_upgrade=False) for _ in range(2)]
    with stores[0].write() as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    longest: list[float] = []

    def write(store, n: int) -> None:
        for i in range(n):
            start = time.monotonic()
            with store.write() as session:
                longest.append(time.monotonic() - start)
                session.execute(text("INSERT INTO t VALUES (:x)"), {"x": i})

    def busy() -> None:  # as a worker's event loop: the helpers wait for the GIL
        while any(thread.is_alive() for thread in threads):
            sum(range(10_000))

    threads = [threading.Thread(target=write, args=(store, 250)) for store in stores]
    for thread in threads + [threading.Thread(target=busy)]:
        thread.start()
    for thread in threads:
        thread.join(60)
    with stores[0].read() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 500
    for store in stores:
        store.dispose()
    # No writer waited out FileLock.WAIT and went on without the lock. (How long a wait
    # took is the benchmark's business: on a loaded machine 500 fsyncs vary widely.)
    assert len(longest) == 500
    assert "writing without it" not in caplog.text


def _filler(column, ids: dict[str, int]):
    """A value for a column: the parent's row for a foreign key, else one of its type."""
    for key in column.foreign_keys:
        return ids[key.column.table.name]
    kind = column.type.python_type
    return {int: 1, bool: False, str: "x", bytes: b"x"}.get(
        kind, dt.datetime(2026, 1, 1) if kind is dt.datetime else None)


def _fill_every_table(engine) -> dict[str, int]:
    """One row in each table (parents first), as the schema stands; row counts by table."""
    meta = MetaData()
    meta.reflect(engine)
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            if table.name == "alembic_version":
                continue
            serial = [c.name for c in table.primary_key.columns if not c.foreign_keys
                      and c.type.python_type is int][:len(table.primary_key.columns) == 1]
            row = {c.name: _filler(c, ids) for c in table.columns if c.name not in serial}
            result = conn.execute(table.insert().values(**row))
            ids[table.name] = (result.inserted_primary_key or [1])[0]
    return _counts(engine)


def _counts(engine) -> dict[str, int]:
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                for t in meta.sorted_tables if t.name != "alembic_version"}


@pytest.mark.parametrize("start", ["0001", "0002", "0003", "0004", "0005", "0007"])
def test_upgrades_keep_every_row(db_url, start):
    """SQLite alters a table by copying it; with foreign keys on, dropping the old copy
    cascaded and emptied bookings and occurrences when mailboxes changed."""
    engine = make_engine(db_url, pool_size=1)
    upgrade(engine, start)
    before = _fill_every_table(engine)
    upgrade(engine)
    after = _counts(engine)
    engine.dispose()
    assert {name: after[name] for name in before} == before
