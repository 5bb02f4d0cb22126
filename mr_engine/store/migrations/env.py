"""Alembic environment: runs migrations on the engine handed in by ``mr_engine.store.db.upgrade``."""

from alembic import context
from sqlalchemy import text

from mr_engine.store.models import Base

# A fixed key for PostgreSQL's advisory lock: several server processes starting at once on a
# fresh database must not race to create the schema.
_MIGRATION_LOCK = 0x6D72656E67


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            _sqlite_foreign_keys_off(connection)
        try:
            context.configure(connection=connection, target_metadata=Base.metadata,
                              render_as_batch=sqlite)
            with context.begin_transaction():
                if engine.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                       {"k": _MIGRATION_LOCK})
                context.run_migrations()
                if sqlite:
                    _check_foreign_keys(connection)
        finally:
            if sqlite:  # not back to the pool with foreign keys off: a new one gets them on
                connection.invalidate()


def _sqlite_foreign_keys_off(connection) -> None:
    """SQLite alters a table by copying it into a new one and dropping the old one; with
    foreign keys on, that drop cascades (ON DELETE CASCADE) and empties every table that
    refers to it: bookings and occurrences when ``mailboxes`` changes. So migrations run
    with them off (https://www.sqlite.org/lang_altertable.html, "other kinds of table schema
    changes"). The pragma is a no-op inside a transaction, hence the driver connection,
    before SQLAlchemy begins one."""
    connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")


def _check_foreign_keys(connection) -> None:
    """What the copies left behind must still hold together before the upgrade commits."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"migration left {len(broken)} rows with broken references, "
                           f"first in table {broken[0][0]}")


run_migrations_online()
