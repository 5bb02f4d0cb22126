"""The wall clock, read only at the edges (server, relay, commands) and passed down as ``now``."""

from __future__ import annotations

import datetime as dt
import time


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def monotonic() -> float:
    """Seconds of a clock that never goes back: how long a cached answer has been kept."""
    return time.monotonic()
