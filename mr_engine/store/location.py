"""Where a store is, and whether it exists yet, looked at without creating anything.

Opening a store that is not there creates it: SQLite makes the file, the migrations make
the tables. A command run with settings that point somewhere new would then work on an
empty store without a word (``kopano-cli --list-users`` listing 0 users); with
``is_new_store`` it can say so first.
"""

from __future__ import annotations

import os

from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from mr_engine.store.db import sqlite_file

VERSION_TABLE = "alembic_version"  # what every migrated store has


def masked_url(url: str) -> str:
    """The URL as people may see it: any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(not a database URL)"


def store_location(url: str) -> str:
    """The SQLite file, else the masked URL."""
    return sqlite_file(url) or masked_url(url)


def is_new_store(url: str) -> bool:
    """No SQLite file yet (or an empty one), or a database without the version table."""
    path = sqlite_file(url)
    if url.startswith("sqlite"):
        return path is not None and (not os.path.exists(path) or os.path.getsize(path) == 0)
    engine = create_engine(url, poolclass=NullPool)
    try:
        return not inspect(engine).has_table(VERSION_TABLE)
    except SQLAlchemyError:
        return False  # unreachable: the open that follows reports that, not this look
    finally:
        engine.dispose()
