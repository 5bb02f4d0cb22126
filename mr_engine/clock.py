"""The wall clock, read only at the edges (server, relay, commands) and passed down as ``now``."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
