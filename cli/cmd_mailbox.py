"""``mr-engine mailbox USER`` and ``mr-engine message USER ID``: what was delivered."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.orm import Session

from mr_engine.config import Settings
from mr_engine.store.directories import NotFound, open_directory
from mr_engine.store.messages import get_content, list_messages
from mr_engine.core.printable import printable
from mr_engine.store.models import Store
from mr_engine.store.stores import store_of

from .common import add_config_flags, iso, open_db, print_json, settings_from


def add_parser(sub) -> None:
    listing = sub.add_parser("mailbox", help="list the messages of a mailbox")
    add_config_flags(listing)
    listing.add_argument("user")
    listing.add_argument("--folder", metavar="NAME", help="only this folder (e.g. Inbox)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run_mailbox)
    show = sub.add_parser("message", help="print one stored message, as stored (on a "
                          "terminal with its control characters escaped)")
    add_config_flags(show)
    show.add_argument("user")
    show.add_argument("id", type=int)
    show.set_defaults(func=run_message)


def _store(settings: Settings, session: Session, name: str) -> Store:
    store = store_of(session, open_directory(settings, session).user(name))
    if store is None:
        raise NotFound(f"user {name!r} has no store")
    return store


def run_mailbox(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    db = open_db(settings)
    with db.read() as session:
        messages = list_messages(session, _store(settings, session, args.user), args.folder)
    if args.json:
        print_json([{"id": m.id, "folder": m.folder, "message_id": m.message_id,
                     "subject": m.subject, "from": m.from_, "size": m.size,
                     "received_at": iso(m.received_at)} for m in messages])
        return 0
    print(f"{'ID':>6}  {'Folder':<20} {'Received':<20} {'Size':>8}  From / Subject")
    for m in messages:
        # From and Subject are the sender's text (filing cleans them; this is the last word).
        print(f"{m.id:>6}  {printable(m.folder):<20} {iso(m.received_at):<20} {m.size:>8}  "
              f"{printable(m.from_)} / {printable(m.subject)}")
    return 0


def run_message(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    db = open_db(settings)
    with db.read() as session:
        content = get_content(session, _store(settings, session, args.user), args.id)
    if sys.stdout.isatty():
        sys.stdout.write(for_terminal(content))
    else:
        sys.stdout.buffer.write(content)  # to a file or a pipe: every byte as stored
    sys.stdout.flush()
    return 0


def for_terminal(content: bytes) -> str:
    """The message as text to read: its lines and tabs kept, every other control escaped.

    On a terminal the message is read, not saved, and an ESC in it would be obeyed;
    bytes that are not UTF-8 are shown as ``\\xNN``.
    """
    text = content.decode("utf-8", "backslashreplace").replace("\r\n", "\n")
    return printable(text, keep="\n\t")
