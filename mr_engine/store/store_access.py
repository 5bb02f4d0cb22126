"""Who may read the SQLite store: its directory, the database file and the files beside it.

The store holds every message and the password hashes, so it is private by default,
whatever the umask: a store directory the engine creates is 0700, the database file, its
``-wal`` and ``-shm`` and the ``-writer.lock`` are 0600. With ``store_group`` they belong to
that group, the files 0640 and the directory 0750 plus the setgid bit (2750).

How the four files get there: SQLite creates ``-wal`` and ``-shm`` with the mode of the
database file (and, running as root, its owner and group), and the writer lock copies it
too (``db.FileLock``). So the database file is created here, before SQLite opens it, with
the mode meant for all of them; created 0600 and only then given its group and mode, it is
never readable by others in between. A process that is not root gives the files it creates
its own group, except in a setgid directory, whose group they get: hence the setgid bit.

Files that exist already are never given more access. Those that other users can read (an
older store, made under umask 022 as 0644) lose the others' bits whenever the store is
opened by their owner; their group bits are left alone, since the group may be an
administrator's choice. An existing directory is left as it is (it may be /var/lib).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mr_engine.config import ConfigError, group_id

log = logging.getLogger(__name__)

BESIDE = ("-wal", "-shm", "-writer.lock")  # what SQLite and db.WriterLock add to the name
_OTHERS = stat.S_IRWXO


@dataclass(frozen=True)
class StoreAccess:
    gid: int | None = None  # store_group; None: the owner's alone

    @property
    def file_mode(self) -> int:
        return 0o600 if self.gid is None else 0o640

    @property
    def directory_mode(self) -> int:
        return 0o700 if self.gid is None else 0o2750


def prepare_sqlite_store(database: str, store_group: str = "") -> None:
    """Before SQLite opens ``database``: make its directory and the file private, or tighten
    what an older version left open to other users."""
    try:
        access = StoreAccess(group_id(store_group))
    except ValueError as exc:
        raise ConfigError(f"invalid value for store_group: {exc}") from None
    path = Path(database)
    _make_directory(path.parent, access)
    _create_database(path, access)
    for name in (database, *(database + suffix for suffix in BESIDE)):
        _close_to_others(name)


def _make_directory(directory: Path, access: StoreAccess) -> None:
    if directory.is_dir():
        return
    directory.parent.mkdir(parents=True, exist_ok=True)  # like mkdir -p: not the store's
    try:
        os.mkdir(directory, 0o700)  # at most the owner's until its group and mode are set
    except FileExistsError:
        return  # another process made it meanwhile
    _give(str(directory), access.directory_mode, access)


def _create_database(path: Path, access: StoreAccess) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)  # an empty file is an empty SQLite database
    except FileExistsError:
        return
    try:
        _give(fd, access.file_mode, access)
    except BaseException:
        os.unlink(path)  # else the next start would find it and leave it as it is
        raise
    finally:
        os.close(fd)


def _give(target: str | int, mode: int, access: StoreAccess) -> None:
    """Group first, then mode: chown may clear the setgid bit; ``target`` a path or fd."""
    try:
        if access.gid is not None:
            os.chown(target, -1, access.gid)
        os.chmod(target, mode)  # exactly: the umask took bits from the mode at creation
    except PermissionError as exc:
        raise ConfigError(f"invalid value for store_group: cannot give the store to group "
                          f"{access.gid}: {exc.strerror}") from None


def _close_to_others(name: str) -> None:
    try:
        mode = stat.S_IMODE(os.stat(name).st_mode)
    except FileNotFoundError:
        return
    if not mode & _OTHERS:
        return
    try:
        os.chmod(name, mode & ~_OTHERS)
    except PermissionError:
        log.warning("%s can be read by any user (mode %04o); only its owner can change "
                    "that", name, mode)
        return
    log.warning("%s could be read by any user; mode %04o -> %04o", name, mode,
                mode & ~_OTHERS)
