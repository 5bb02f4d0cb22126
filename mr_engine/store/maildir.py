"""Maildirs on disk: a message delivered durably into a folder, and a Maildir's size.

Delivery follows the Maildir specification (cr.yp.to/proto/maildir.html): the message is
written under ``tmp/`` with a unique name, fsynced, renamed into ``new/``, and ``new/`` is
fsynced, so that once ``deliver`` returns the message survives a crash or power loss.
Folders are Maildir++ directories (``core.maildir_names.folder_dir``), created on demand
with the ``maildirfolder`` marker Dovecot writes.

A Maildir the engine creates belongs to whoever owns the directory it is created in when the
engine runs as root, so that a mail server reading the Maildirs as its mail user (Dovecot's
``mail_uid``) can read and move what the engine wrote.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from mr_engine.config import Settings
from mr_engine.core.maildir_names import expand_path, folder_dir, size_in_name, unique_name
from mr_engine.store.mailbox_rows import MailboxRow
from mr_engine.store.models import Mailbox

_SUBDIRS = ("tmp", "new", "cur")
_sequence = itertools.count(1)


def maildir_of(settings: Settings, mailbox: Mailbox | MailboxRow) -> Path:
    """The Maildir of ``mailbox`` (``maildir_path`` expanded).

    The one place a Maildir path is resolved: a relative ``maildir_path`` is relative to
    the working directory of the server.
    """
    domain = mailbox.email.rpartition("@")[2]
    return Path(expand_path(settings.maildir_path, mailbox.name, domain))


@dataclass(frozen=True)
class Maildir:
    root: Path

    def deliver(self, folder: str, content: bytes) -> Path:
        """``content`` as a new message of ``folder``, durably; returns its path."""
        directory = self.root / folder_dir(folder)
        name = _new_name(len(content))
        try:
            temporary = _write(directory / "tmp" / name, content)
        except FileNotFoundError:  # a first delivery, or a folder deleted over IMAP
            _make_maildir(self.root, folder_marker=False)
            if directory != self.root:
                _make_maildir(directory, folder_marker=True)
            temporary = _write(directory / "tmp" / name, content)
        final = directory / "new" / name
        try:
            os.rename(temporary, final)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        _fsync_dir(directory / "new")
        return final

    def size(self) -> int:
        """Bytes in the messages of every folder (names' ``,S=``, else the file's size)."""
        if not self.root.is_dir():
            return 0
        folders = [self.root] + [p for p in self.root.iterdir()
                                 if p.name.startswith(".") and p.name not in (".", "..")]
        return sum(_size_of(folder / sub) for folder in folders for sub in ("new", "cur"))


def _new_name(size: int) -> str:
    now = time.time()
    return unique_name(int(now), int(now % 1 * 1_000_000), os.getpid(), next(_sequence),
                       socket.gethostname(), size)


def _write(path: Path, content: bytes) -> Path:
    # O_EXCL: a unique name that is not unique must fail, not overwrite another message.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        _follow_owner(fd, path.parent)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return path


def _make_maildir(directory: Path, folder_marker: bool) -> None:
    _make_dirs(directory)
    for sub in _SUBDIRS:
        _make_dirs(directory / sub)
    if folder_marker:  # Maildir++: a folder's directory says it is one
        marker = directory / "maildirfolder"
        if not marker.exists():
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600)
            _follow_owner(fd, directory)
            os.close(fd)
    _fsync_dir(directory)


def _make_dirs(path: Path) -> None:
    """``path`` and its missing parents, each fsynced into its parent (a directory that a
    crash forgets would take the messages in it along)."""
    if path.is_dir():
        return
    _make_dirs(path.parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return  # another process made it meanwhile
    fd = os.open(path, os.O_RDONLY)
    try:
        _follow_owner(fd, path.parent)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _follow_owner(fd: int, parent: Path) -> None:
    if os.geteuid() == 0:
        owner = parent.stat()
        os.fchown(fd, owner.st_uid, owner.st_gid)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size_of(directory: Path) -> int:
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    total = 0
    for entry in entries:
        stated = size_in_name(entry.name)
        total += stated if stated is not None else _file_size(entry)
    return total


def _file_size(entry: os.DirEntry[str]) -> int:
    try:
        return entry.stat().st_size
    except FileNotFoundError:  # moved from new/ to cur/ meanwhile
        return 0
