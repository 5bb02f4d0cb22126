"""The resource a request names, and its secret: the checks every resource URL makes.

A URL names a resource by its address or its user name; anything else (a user, a group,
nobody) is 404, so the HTTP front end tells nothing of users. A resource with a calendar
token (``kopano-cli --calendar-token new``) shows its feed and page only to a request that
carries it as ``?token=``; the comparison takes constant time.
"""

from __future__ import annotations

import hmac
from typing import Mapping

from mr_engine.store.directories import Directory, DirectoryError
from mr_engine.store.models import Mailbox

from .errors import Forbidden, NotFound


def find_resource(directory: Directory, name: str) -> Mailbox:
    """The resource whose address or user name is ``name``, else NotFound."""
    found = _by_address(directory, name) if "@" in name else _by_name(directory, name)
    if found is None or found.resource_type == "none":
        raise NotFound(f"no resource {name[:100]!r}")
    return found


def _by_name(directory: Directory, name: str) -> Mailbox | None:
    try:
        return directory.user(name)
    except DirectoryError:
        return None


def _by_address(directory: Directory, address: str) -> Mailbox | None:
    """The one mailbox the address is its own (a group's address is not a resource's)."""
    found = directory.resolve(address)
    if len(found) == 1 and found[0].email_lower == _plain(address):
        return found[0]
    return _by_name(directory, address)


def _plain(address: str) -> str:
    """``user+detail@domain`` as ``user@domain``, lower-cased, as ``resolve`` reads it."""
    local, _, domain = address.lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def require_token(query: Mapping[str, str], resource: Mailbox) -> None:
    """Forbidden unless the resource has no token or the query carries it."""
    if resource.calendar_token is None:
        return
    given = query.get("token", "")
    if not hmac.compare_digest(given.encode(), resource.calendar_token.encode()):
        raise Forbidden("this calendar needs its token (?token=)")
