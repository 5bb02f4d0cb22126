"""A meeting request on stdin explained, booking nothing: what ``mr-engine explain USER`` and
``kopano-mr-accept --dry-run USER`` print (``services.explain``).

The message is processed as delivery would process it, in a transaction that is rolled
back (``Database.rehearsal``): nothing is booked, queued or filed. The first line is what
``kopano-mr-accept`` prints for the outcome (``accepted``, ``declined: <reasons>``, ...);
then each booking rule with its result, the bookings in conflict (their times; subject and
organizer as the resource's ``calendar_details`` shows them), the alternatives a decline
offers and the member a pool would pick. ``--json``: one object with the keys
``outcome``, ``reasons``, ``rules``, ``conflicts``, ``alternatives``, ``member``.
"""

from __future__ import annotations

import sys
import zoneinfo
from typing import Any

from mr_engine.clock import utcnow
from mr_engine.config import Settings
from mr_engine.core.alternatives import text as offer_text
from mr_engine.core.feed import Published
from mr_engine.core.printable import printable
from mr_engine.delivery.context import Envelope, message_id_of, parse_message
from mr_engine.services.explain import NotExplainable, Report, explain
from mr_engine.services.replies import summarize
from mr_engine.store.models import Mailbox

from .common import EXIT_ERROR, fail, iso, open_db, print_json

RULE_WIDTH = 22  # the longest rule name, and room
BUSY = "busy"  # the calendar_details level that shows no subject


def envelope(raw: bytes, settings: Settings, helo: str) -> Envelope:
    """The message as LMTP would hand it on: no envelope sender (so no out-of-office reply
    goes anywhere), its calendar read before the write lock is taken."""
    message = parse_message(raw)
    read = Envelope(sender="", content=raw, message=message, message_id=message_id_of(message),
                    helo=helo)
    read.invitation(zoneinfo.ZoneInfo(settings.default_timezone))
    return read


def from_stdin(settings: Settings, program: str) -> Envelope | None:
    """The message on stdin; None, said on stderr, when there is none."""
    raw = sys.stdin.buffer.read()
    if not raw.strip():
        fail(f"no message on standard input: {program} reads the message there")
        return None
    return envelope(raw, settings, program)


def run(settings: Settings, user: str, as_json: bool, program: str) -> int:
    """Explain the message on stdin for ``user``: exit 0, or 1 with a one-line error."""
    incoming = from_stdin(settings, program)
    if incoming is None:
        return EXIT_ERROR
    db = open_db(settings)
    try:
        with db.rehearsal() as session:
            report = explain(session, user, incoming, settings, utcnow())
            shown = as_dict(report) if as_json else lines(report)
    except NotExplainable as exc:
        return fail(str(exc))
    finally:
        db.dispose()
    if as_json:
        print_json(shown)
    else:
        print("\n".join(printable(line) for line in shown))
    return 0


def _member(member: Mailbox | None) -> dict[str, str] | None:
    return None if member is None else {"name": member.name, "address": member.email}


def _conflict(entry: Published, details: str) -> dict[str, Any]:
    """A booking in the way; what the ``details`` level withholds is null."""
    seen = entry.shown
    return {"start": iso(entry.start), "end": iso(entry.end), "status": entry.status,
            "subject": None if details == BUSY else seen.title,
            "organizer": seen.organizer or None, "organizer_name": seen.organizer_name or None,
            "attendees": seen.attendees}


def as_dict(report: Report) -> dict[str, Any]:
    return {"outcome": report.outcome, "reasons": list(report.reasons),
            "rules": [{"rule": r.rule, "result": r.result, "reason": r.reason}
                      for r in report.rules],
            "conflicts": [_conflict(c, report.details) for c in report.conflicts],
            "alternatives": report.alternatives.as_json(), "member": _member(report.member)}


def _headline(report: Report) -> str:
    """The outcome as ``kopano-mr-accept`` prints it."""
    return f"{report.outcome}: {summarize(report.reasons)}" if report.reasons \
        else report.outcome


def _conflict_line(entry: Published, details: str) -> str:
    who = _conflict(entry, details)
    organizer = " ".join(filter(None, (who["organizer_name"],
                                       who["organizer"] and f"<{who['organizer']}>")))
    return "  ".join(filter(None, (who["start"], who["end"], who["status"], who["subject"],
                                   organizer)))


def _sections(report: Report) -> list[list[str]]:
    rules = [f"  {r.rule:<{RULE_WIDTH}} {r.result:<15} {r.reason}".rstrip()
             for r in report.rules] or ["  none (not a request the rules judge)"]
    conflicts = [f"  {_conflict_line(c, report.details)}" for c in report.conflicts]
    member = report.member
    return [[_headline(report)], [f"Rules of {report.judged}:", *rules],
            ["Conflicts:", *conflicts] if conflicts else [],
            offer_text(report.alternatives, report.zone),
            [f"Member: {member.name} <{member.email}>"] if member is not None else []]


def lines(report: Report) -> list[str]:
    """The text: the outcome, the rules, the conflicts, the alternatives, the member, each
    part after a blank line."""
    parts = [part for part in _sections(report) if part]
    return [line for k, part in enumerate(parts) for line in [""] * (k > 0) + part]
