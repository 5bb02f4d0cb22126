"""Database connection: engine set-up per backend, sessions, and schema upgrades.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL`` so that a commit is
durable before LMTP says 250, with foreign keys on, and with write transactions opened as
``BEGIN IMMEDIATE`` so check-and-book is serialized across processes. PostgreSQL is used
through psycopg 3; there, serialization uses row locks (see ``lock_mailbox``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import threading
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from sqlalchemy import Connection, Engine, bindparam, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, NoResultFound
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from mr_engine import metrics
from mr_engine.store import per_transaction
from mr_engine.store.entities import MAILBOXES
from mr_engine.store.models import Mailbox
from mr_engine.store.prepared import Prepared, send_waiting_first
from mr_engine.store.store_access import prepare_sqlite_store

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")



def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL (None in memory)."""
    database = make_url(url).database
    return database if database and database != ":memory:" else None


def make_engine(url: str, pool_size: int = 10, store_group: str = "") -> Engine:
    """An engine for ``url``; a SQLite store's files are made private first (with
    ``store_group``, readable by that group: see ``store_access``)."""
    if url.startswith("sqlite"):
        database = sqlite_file(url)
        if database:
            prepare_sqlite_store(database, store_group)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                               pool_size=pool_size, max_overflow=pool_size)
        _configure_sqlite(engine)
        return engine
    # prepare_threshold None: psycopg prepares nothing of its own. store.prepared's statements
    # are prepared by store.pg_wire, and psycopg deallocates every prepared statement of the
    # session (DEALLOCATE ALL) at a rollback once it has prepared any itself.
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                           connect_args={"prepare_threshold": None})
    send_waiting_first(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Take transaction control away from the sqlite3 module so that we can say
        # BEGIN IMMEDIATE ourselves (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        # On the DBAPI connection, as store.prepared runs statements: SQLAlchemy's execution
        # of the same text cost 30 µs of CPU, every write transaction. Its errors are raised
        # as SQLAlchemy's would be (a locked database: OperationalError).
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        sql = f"BEGIN {mode}"
        error = conn.dialect.loaded_dbapi.Error
        try:
            conn.connection.driver_connection.execute(sql).close()
        except error as exc:
            raise DBAPIError.instance(sql, None, exc, error, dialect=conn.dialect) from exc


# alembic is imported where it is used: a serve worker never migrates, and importing it
# costs every worker process 11 MB.


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


# The newest migration's revision (tests/test_store.py checks it is alembic's head). A
# store already there is left alone without importing alembic: a quarter of a second that
# every kopano-cli call from cron or the MTA would pay.
HEAD_REVISION = "0008"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to run from several processes at once."""
    if revision == "head" and stored_revision(engine) == HEAD_REVISION:
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def stored_revision(engine: Engine) -> str | None:
    """The revision in alembic's table, read directly; None for a store without one."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no table yet: a new store
        return None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def probe(session: Session) -> str | None:
    """``SELECT 1``, then the schema's revision, read from alembic's table directly
    (``current_revision`` imports alembic, which a serve worker does not)."""
    session.execute(text("SELECT 1"))
    return session.execute(text("SELECT version_num FROM alembic_version")).scalar()


class FairLock:
    """A first-come, first-served lock.

    SQLite lets one writer in at a time, and its busy handler sleeps and retries: a thread
    that commits in a loop (the group committer under load) retakes the lock before a
    sleeping one (the relay) wakes, starving it. Taking turns in-process avoids that.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._changed:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._changed.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._serving += 1
            self._changed.notify_all()


class FileLock:
    """SQLite writers of several processes (LMTP workers, the CLI) take turns on a lock file.

    Without it, a writer that finds the database locked sleeps in SQLite's busy handler
    (1, 2, 5, 10 ... ms) while the other process commits again and again; a writer blocked
    in ``flock`` is woken the moment the lock is free. It only schedules: SQLite's own lock
    (BEGIN IMMEDIATE) is what keeps writers apart. So after ``WAIT`` seconds (a stopped or
    hung writer elsewhere), or when the lock file cannot be opened, a writer goes on
    without it and SQLite's busy timeout decides, as it did before.

    ``flock`` cannot time out, so a contended lock is waited for by a helper thread on a
    descriptor of its own (a second open file: the two exclude each other like processes),
    and the writer waits for that thread with a timeout. If the writer has given up by the
    time the helper gets the lock, the helper lets it go. Descriptors and the helper are
    per process: a ``flock`` held through a descriptor inherited across ``fork`` would be
    shared, not exclusive.
    """

    WAIT = 1.0  # seconds

    def __init__(self, path: str, database: str) -> None:
        self.path = path
        self.database = database
        self._pid = 0
        self._fd: int | None = None  # tried without blocking, by the writer itself
        self._helper_fd: int | None = None  # waited on by the helper thread
        self._holding: int | None = None  # the descriptor that holds the lock now
        self._changed = threading.Condition()
        self._wanted = False
        self._granted = False

    def __enter__(self) -> None:
        if self._pid != os.getpid():
            self._start()
        if self._fd is None or self._helper_fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._holding = self._fd
            return
        except BlockingIOError:
            pass
        with self._changed:
            self._wanted = True
            self._changed.notify_all()
            if self._changed.wait_for(lambda: self._granted, self.WAIT):
                self._holding = self._helper_fd
            else:
                log.warning("%s held elsewhere for over %.0f s; writing without it",
                            self.path, self.WAIT)
            self._wanted = self._granted = False
            self._changed.notify_all()

    def __exit__(self, *exc: object) -> None:
        if self._holding is not None:
            fcntl.flock(self._holding, fcntl.LOCK_UN)
            self._holding = None

    def _start(self) -> None:
        for inherited in (self._fd, self._helper_fd):  # from before a fork: not ours
            if inherited is not None:
                os.close(inherited)
        self._pid = os.getpid()
        self._fd, self._helper_fd = self._open(), self._open()
        self._holding, self._wanted, self._granted = None, False, False
        self._changed = threading.Condition()
        if self._helper_fd is not None:
            threading.Thread(target=self._help, args=(self._helper_fd,), daemon=True,
                             name="writer-lock").start()

    def _help(self, fd: int) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._wanted and not self._granted)
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._changed:
                if self._wanted and not self._granted:
                    self._granted = True
                    self._changed.notify_all()
                    # Until the writer has taken it over (it unlocks it in __exit__). Not
                    # "until nobody wants it": the next writer may want it by then.
                    self._changed.wait_for(lambda: not self._granted)
                else:
                    fcntl.flock(fd, fcntl.LOCK_UN)  # the writer gave up meanwhile

    def _open(self) -> int | None:
        # Whoever writes first creates the file: the service, or an administrator's
        # kopano-cli run as root. Like SQLite's -wal and -shm files, it gets the database
        # file's permissions (exactly: not less what the umask takes) and, when root
        # creates it, its owner, so that every writer of the database can open it and
        # nobody else (see store_access). flock needs no write access: read-only suffices.
        # No symbolic link is followed, and only a file created here is given away.
        try:
            db: os.stat_result | None = os.stat(self.database)
        except FileNotFoundError:
            db = None
        mode = db.st_mode & 0o666 if db is not None else 0o600
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            try:
                fd, created = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, mode), True
            except FileExistsError:
                fd, created = os.open(self.path, flags), False
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(f"{self.path} is not a regular file")
            if created and db is not None and os.geteuid() == 0:
                os.fchown(fd, db.st_uid, db.st_gid)
            if created:
                os.fchmod(fd, mode)
        except OSError as exc:
            log.warning("writer lock file unusable (%s); writers rely on SQLite's locking",
                        exc)
            return None
        return fd


class WriterLock:
    """Threads of this process first take turns among themselves, then with other processes.

    The seconds it is waited for and held are counted (``metrics.STORE_WRITE_*``): SQLite
    has one writer at a time, so a lock held most of the time is where the store's write
    rate ends, however many cores and workers there are.
    """

    def __init__(self, database_path: str | None) -> None:
        self._threads = FairLock()
        self._processes = (FileLock(database_path + "-writer.lock", database_path)
                           if database_path else None)
        self._taken = 0.0  # perf_counter when the holder took it (one holder at a time)

    def __enter__(self) -> None:
        asked = time.perf_counter()
        self._threads.__enter__()
        if self._processes is not None:
            try:
                self._processes.__enter__()
            except BaseException:
                self._threads.__exit__()
                raise
        self._taken = time.perf_counter()
        metrics.STORE_WRITE_WAIT_SECONDS.inc(self._taken - asked)

    def __exit__(self, *exc: object) -> None:
        metrics.STORE_WRITE_HELD_SECONDS.observe(time.perf_counter() - self._taken)
        try:
            if self._processes is not None:
                self._processes.__exit__()
        finally:
            self._threads.__exit__()


@dataclass
class Database:
    """The engine and session factories handed to every service (no globals)."""

    engine: Engine
    sessions: sessionmaker[Session]
    readers: sessionmaker[Session]
    writers: AbstractContextManager = field(default_factory=nullcontext)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed on success and rolled back on error."""
        with self.writers, self.sessions.begin() as session:
            yield session

    def held_writer(self) -> "HeldWriter":
        """Write transactions on one connection, for the one thread that writes most."""
        return HeldWriter(self)

    @contextmanager
    def rehearsal(self) -> Iterator[Session]:
        """A write transaction that is always rolled back: what a change would do (locks
        and all, as ``write`` takes them), leaving the store as it was."""
        with self.writers, self.sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction; on SQLite it does not take the write lock."""
        with self.readers() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str, auto_upgrade: bool = True, pool_size: int = 10,
                  store_group: str = "") -> Database:
    """Connect to ``url``; the schema is brought up to date unless told otherwise."""
    engine = make_engine(url, pool_size=pool_size, store_group=store_group)
    if auto_upgrade:
        upgrade(engine)
    reader_engine = engine.execution_options(sqlite_begin="DEFERRED")
    return Database(
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        readers=sessionmaker(reader_engine, expire_on_commit=False),
        writers=WriterLock(sqlite_file(url)) if engine.dialect.name == "sqlite"
        else nullcontext(),
    )


# populate_existing: the row may already be in the session (loaded before the lock was
# taken); what another process committed meanwhile, e.g. longest_occurrence, must be seen.
_LOCK = (select(Mailbox).where(Mailbox.id == bindparam("id")).with_for_update()
         .execution_options(populate_existing=True))


# For a mailbox the session has loaded (the committer loads a batch's resources first):
# the row locked by a store.prepared statement and every column of the entity refreshed
# from it, as populate_existing does; the ORM's select cost three times the CPU.
_LOCK_ROW = Prepared(select(*(column for _, column in MAILBOXES.columns))
                     .where(Mailbox.id == bindparam("id")).with_for_update())


_LOCKED = "mailbox row locked"  # per_transaction: mailbox ids


def lock_mailbox(session: Session, mailbox_id: int) -> Mailbox:
    """Serialize check-and-book for one resource across sessions and processes.

    PostgreSQL: ``SELECT ... FOR UPDATE`` on the mailbox row, once a transaction (a batch of
    requests for one room locks it once): while the lock is held nobody else changes the
    row, so the entity read with it stays current. SQLite: the transaction already holds
    the database write lock (BEGIN IMMEDIATE), so a plain read is enough.
    """
    return lock_mailbox_later(session, mailbox_id)()


def lock_mailbox_later(session: Session, mailbox_id: int) -> Callable[[], Mailbox]:
    """``lock_mailbox``, the row's entity refreshed when the function returned is called:
    in a ``prepared.pipelined`` block the lock is asked with the block's other statements,
    each of which the server runs after the one before (so a read sent after it reads, in
    its own snapshot, what was committed before the lock was ours). Call it once."""
    if session.get_bind().dialect.name == "sqlite":
        return lambda: session.get_one(Mailbox, mailbox_id)
    loaded = session.identity_map.get(identity_key(Mailbox, mailbox_id))
    if loaded is not None and per_transaction.done(session, _LOCKED, mailbox_id):
        return lambda: loaded
    session.flush()  # the entity's own pending changes first, as the ORM's select would
    read = _LOCK_ROW.rows_later(session.connection(), {"id": mailbox_id})
    per_transaction.note(session, _LOCKED, mailbox_id)
    return lambda: _refreshed(session, mailbox_id, loaded, read())


def _refreshed(session: Session, mailbox_id: int, loaded: Mailbox | None,
               rows: list[tuple]) -> Mailbox:
    if not rows:
        raise NoResultFound(f"mailbox {mailbox_id} is gone")
    if loaded is None:  # not in the session: the ORM loads it (after the block: the row is ours)
        return session.execute(_LOCK, {"id": mailbox_id}).scalar_one()
    for (key, _), value in zip(MAILBOXES.columns, rows[0]):
        set_committed_value(loaded, key, value)
    return loaded



class HeldWriter:
    """``Database.write`` on one connection kept between transactions, for one thread.

    The group committer opens a write transaction for every batch. Through the pool, each
    costs a checkout and a return (on PostgreSQL a ping first) and a new Session bound to
    the engine: about twice the Python a plain delivery's own statements take. Here the
    connection stays checked out; each transaction is a Session's, begun on it. The Session
    owns the transaction (it does not join one begun on the connection), so ``after_commit``
    (``event_scripts`` starts its scripts there) comes after the COMMIT, as in
    ``Database.write``. A connection that fails is invalidated by SQLAlchemy, and the next
    transaction gets a new one (the failing batch was answered 451, as any store fault is).
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self.db.writers:
            if self._conn is not None and self._conn.invalidated:
                self.close()
            if self._conn is None:
                self._conn = self.db.engine.connect()
            with self.db.sessions(bind=self._conn) as session, session.begin():
                yield session

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
