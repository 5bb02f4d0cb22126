"""What ``kopano-set-oof`` and ``kopano-cli --ooo-*`` read: wall-clock times in the user's
zone, ``infinite`` for an open bound, the message from a file or stdin; and the real tool's
JSON form of a time (``--dump-json``).

One module so that both commands change the same state (``store.oof_state``) the same way.
"""

from __future__ import annotations

import datetime as dt
import sys
import zoneinfo

from mr_engine.config import Settings
from mr_engine.store.models import Mailbox

from .common import UsageError

INFINITE = "infinite"
# Kopano's pattern; a date alone means its midnight (kopano-cli's --ooo-from 2017-05-01).
TIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d")
DUMP_FORMAT = "%Y-%m-%d %H:%M:%S"  # the real tool's --dump-json


def user_zone(mailbox: Mailbox, settings: Settings) -> zoneinfo.ZoneInfo:
    """The user's own time zone (kopano-cli --timezone), else ``default_timezone``."""
    return zoneinfo.ZoneInfo(mailbox.timezone or settings.default_timezone)


def _wall_time(text: str) -> dt.datetime:
    for pattern in TIME_FORMATS:
        try:
            return dt.datetime.strptime(text, pattern)
        except ValueError:
            continue
    raise UsageError(f'invalid time {text!r}: expected "YYYY-mm-dd HH:MM" or {INFINITE}')


def parse_time(value: str, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    """A wall-clock time in ``zone`` as UTC; ``infinite`` (or Kopano's "infinity") is None."""
    text = value.strip()
    if text.lower() in (INFINITE, "infinity"):
        return None
    # Ambiguous or skipped wall times (DST changes) resolve with fold=0, the earlier offset.
    return _wall_time(text).replace(tzinfo=zone).astimezone(dt.timezone.utc)


def read_message(path: str) -> str:
    """The auto-reply's text from ``path``, or from stdin for ``-``."""
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the message from {path}: {exc}") from None


def dump_time(value: dt.datetime | None, zone: zoneinfo.ZoneInfo) -> str:
    """``YYYY-mm-dd HH:MM:SS`` in the user's zone, ``infinite`` for an open bound."""
    return INFINITE if value is None else value.astimezone(zone).strftime(DUMP_FORMAT)
