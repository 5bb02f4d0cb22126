"""The resource a request names, and its secret: the checks every resource URL makes.

A URL names a resource by its address or its user name; anything else (a user, a group,
nobody) is 404, so the HTTP front end tells nothing of users. A resource with a calendar
token (``kopano-cli --calendar-token new``) shows its feed and page only to a request that
carries it as ``?token=``; the comparison takes constant time.
"""

from __future__ import annotations

import hmac
from typing import Mapping

from mr_engine.services import availability
from mr_engine.store.directories import Directory
from mr_engine.store.models import Mailbox

from .errors import Forbidden, NotFound


def find_resource(directory: Directory, name: str) -> Mailbox:
    """The resource whose address or user name is ``name``, else NotFound."""
    found = availability.find_resource(directory, name)
    if found is None:
        raise no_resource(name)
    return found


def no_resource(name: str) -> NotFound:
    return NotFound(f"no resource {name[:100]!r}")


def require_token(query: Mapping[str, str], resource: Mailbox) -> None:
    """Forbidden unless the resource has no token or the query carries it."""
    if resource.calendar_token is None:
        return
    given = query.get("token", "")
    if not hmac.compare_digest(given.encode(), resource.calendar_token.encode()):
        raise Forbidden("this calendar needs its token (?token=)")
