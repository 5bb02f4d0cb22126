"""``kopano-mr-accept USER [CONFIGFILE [ENTRYID]]``: process one message from stdin as
delivery to USER would.

``USER CONFIGFILE [ENTRYID]`` is how kopano-dagent calls Kopano's script (which then reads
the user's Inbox); here the message comes on stdin, so the two are accepted for those
callers and ignored, with a one-line note.

The message runs through the delivery pipeline itself (``mr_engine.delivery.pipeline``): deduplicated
by Message-ID, booked (or declined, updated, cancelled) with its reply queued, and filed in
Processed Requests, or in the Inbox when it is not processed, all in one transaction. Then
the outcome is printed: ``accepted``, ``tentative`` (held for a delegate's approval),
``declined: <reasons>``, ``ignored: <reason>`` or ``cancelled``. Exit 0 when processed; 1 when the message is not a meeting request for USER
(it is filed in the Inbox all the same), when no reply could be sent, or when it was refused.

``--dry-run``: the decision explained and nothing done (``cli.dry_run``, as ``mr-engine
explain``): nothing is booked, queued or filed.
"""

from __future__ import annotations

import argparse
import sys

from mr_engine.delivery import pipeline
from mr_engine.delivery.context import Batch, Delivery, Envelope, Outcome
from mr_engine.delivery.mail_store import open_mail_store
from mr_engine.clock import utcnow
from mr_engine.config import Settings
from mr_engine.store.directories import open_directory
from mr_engine.store.mailbox_rows import MailboxRow
from mr_engine.core.printable import printable

from . import dry_run
from .common import EXIT_ERROR, add_config_flags, fail, open_db, run_guarded, settings_from


class _Refused(Exception):
    """The pipeline refused the message (hard quota): nothing is written."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reply())
        self.outcome = outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kopano-mr-accept", description=__doc__.splitlines()[0])
    add_config_flags(parser)
    parser.add_argument("user", help="the resource (or user) the message is for")
    parser.add_argument("--dry-run", action="store_true",
                        help="explain the decision (each rule, conflicts, alternatives) and "
                             "book, queue and file nothing")
    parser.add_argument("configfile", nargs="?", metavar="CONFIGFILE",
                        help="kopano-dagent's calling form: ignored (settings: --config)")
    parser.add_argument("entryid", nargs="?", metavar="ENTRYID",
                        help="kopano-dagent's calling form: ignored (the message is stdin's)")
    args = parser.parse_args(argv)
    if args.configfile is not None:
        print("note: CONFIGFILE and ENTRYID are ignored: the message is read from stdin, "
              "the settings from --config / MR_ENGINE_CONFIG", file=sys.stderr)
    return run_guarded(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.dry_run:
        return dry_run.run(settings, args.user, False, "kopano-mr-accept")
    envelope = dry_run.from_stdin(settings, "kopano-mr-accept")
    if envelope is None:
        return EXIT_ERROR
    db = open_db(settings)
    try:
        d = _deliver(db, settings, envelope, args.user)
    except _Refused as refused:
        return fail(f"not delivered: {refused.outcome.reply()}")
    finally:
        db.dispose()
    return _report(d, args.user)


def _deliver(db, settings: Settings, envelope: Envelope, user: str) -> Delivery:
    mail = open_mail_store(settings)  # filed where the server would file it
    try:
        with db.write() as session:
            resource = open_directory(settings, session).user(user)
            d = Delivery(session=session, settings=settings, now=utcnow(), envelope=envelope,
                         recipient=resource.email, row=MailboxRow.of(resource),
                         batch=Batch.load(session, [resource.id]), mail=mail)
            outcome = pipeline.run(d)
            if outcome.code >= 400:
                raise _Refused(outcome)  # rolls the transaction back
    finally:
        mail.close()
    return d


def _report(d: Delivery, user: str) -> int:
    result = d.meeting
    if result is None:
        if "duplicate" in d.notes:
            print("ignored: already processed (duplicate Message-ID)")
            return 0
        why = "auto-accept of meeting requests is off" if not d.mailbox.mr_accept \
            else "not a meeting request for it"
        return fail(f"{user}: {why}; filed in the {d.folder}")
    if result.outcome in ("declined", "ignored"):
        print(printable(result.describe()))
    else:
        # "accepted" (a partially declined series too), "tentative" and "cancelled" stand
        # alone on stdout; what else happened goes to stderr.
        print(result.outcome)
        if result.reasons:
            print(printable(result.describe()), file=sys.stderr)
    for problem in result.problems:
        fail(printable(problem))
    return EXIT_ERROR if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
