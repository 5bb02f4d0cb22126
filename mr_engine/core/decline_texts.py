"""The words of a decline, as Kopano's kopano-mr-accept puts them, then our own reasons.

Administrators and organizers coming from Kopano know its two decline texts: "Recurring
meetings are not allowed" and "The requested time slots are unavailable on the following
dates:" with the dates. A decline leads with those (the dates are our conflict reasons'
spans); the reasons Kopano has no words for (too long, outside working hours, ...) follow.
One line: the text goes into log lines, the command's output and the reply's text part.
"""

from __future__ import annotations

from collections.abc import Sequence

from mr_engine.core.policy import CONFLICT_ON, RECURRING_REFUSED

RECURRING = "Recurring meetings are not allowed"
UNAVAILABLE = "The requested time slots are unavailable on the following dates:"


def _listed(items: Sequence[str], shown: int, separator: str = "; ") -> str:
    """``a; b; c`` for a few, ``a; …; e and 995 more`` for many."""
    text = separator.join(items[:shown])
    return f"{text} and {len(items) - shown} more" if len(items) > shown else text


def worded(reasons: Sequence[str], shown: int) -> str:
    """The decline text for ``reasons`` (a decision's, in order); at most ``shown`` dates
    and ``shown`` other reasons are spelled out."""
    dates = [r.removeprefix(CONFLICT_ON) for r in reasons if r.startswith(CONFLICT_ON)]
    others = [r for r in reasons if not r.startswith(CONFLICT_ON) and r != RECURRING_REFUSED]
    parts = [RECURRING] if RECURRING_REFUSED in reasons else []
    if dates:
        parts.append(f"{UNAVAILABLE} {_listed(dates, shown, ', ')}")
    if others:
        parts.append(_listed(others, shown))
    return "; ".join(parts)
