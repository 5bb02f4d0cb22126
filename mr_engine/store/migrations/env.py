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
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=engine.dialect.name == "sqlite")
        with context.begin_transaction():
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                                   {"k": _MIGRATION_LOCK})
            context.run_migrations()


run_migrations_online()
