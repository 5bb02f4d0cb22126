"""Text layouts of ``kopano-cli``: details as Kopano prints them, and the listings.

Every function takes the plain data that ``--json`` prints (dicts and lists of str, int, bool
and ``None``) and returns text, so the two outputs can never disagree. Every value is shown
through ``printable``: a full name or an address with a newline or an ESC stays one visible
cell, and only the layout's own tabs and newlines reach the terminal.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from mr_engine.core.printable import printable
from mr_engine.core.resource_settings import SETTINGS, Setting

TAB = 8

_ADMIN_LEVELS = {0: "no", 1: "yes", 2: "yes (system administrator)"}


def human_size(size: int) -> str:
    """Bytes in the largest unit that keeps a small store from reading as 0.00 MB."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{size} B"


def quota(size: int) -> str:
    return human_size(size) if size else "unlimited"


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def comma_list(values: Sequence[str]) -> str:
    return ", ".join(values)


def out_of_office(oof: Mapping[str, Any]) -> str:
    period = [f"{word} {oof[key]}" for word, key in (("from", "from"), ("until", "until"))
              if oof[key]]
    state = "enabled" if oof["enabled"] else "disabled"
    return f"{state} ({' '.join(period)})" if period else state


def _shown(declared: Setting) -> Callable[[Any], str]:
    """How ``--user`` shows a resource setting: as declared, else yes/no, a list's entries
    or as it is."""
    if declared.listed:
        return comma_list
    return declared.show or (yes_no if declared.value_type is bool else str)


# Label, key of the details object, how the value is shown: in the order Kopano shows them.
_USER_LAYOUT: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("Name", "name", str),
    ("Full name", "fullname", str),
    ("Email address", "email", str),
    ("Active", "active", yes_no),
    ("Administrator", "admin_level", lambda level: _ADMIN_LEVELS.get(level, str(level))),
    ("Store", "store", lambda guid: guid or "none"),
    ("Store size", "store_size", human_size),
    ("Send-as", "sendas", comma_list),
    ("Time zone", "timezone", str),
    *((s.label, s.json, _shown(s)) for s in SETTINGS),
    ("Delegates", "mr_delegates", comma_list),
    ("Out-Of-Office", "out_of_office", out_of_office),
    ("Warning quota", "quota_warning", quota),
    ("Soft quota", "quota_soft", quota),
    ("Hard quota", "quota_hard", quota),
    ("Groups", "groups", comma_list),
    ("Calendar feed", "calendar_feed", lambda url: url or "none"),
)


def labelled(rows: Sequence[tuple[str, str]]) -> str:
    """``Label:`` then tabs up to one common tab stop, then the value (Kopano's layout).

    Tabs rather than spaces so that a script can split a line on the first ``:\\t``.
    """
    column = (max(len(label) + 1 for label, _ in rows) // TAB + 1) * TAB
    lines = []
    for label, value in rows:
        width = len(label) + 1
        tabs = (column - width // TAB * TAB) // TAB
        lines.append(f"{label}:{chr(9) * tabs}{printable(value)}".rstrip())
    return "\n".join(lines)


def user_details(details: Mapping[str, Any]) -> str:
    return labelled([(label, show(details[key])) for label, key, show in _USER_LAYOUT])


def group_details(group: Mapping[str, Any]) -> str:
    nested = [("Member groups", comma_list(group["member_groups"]))] \
        if "member_groups" in group else []
    return labelled([("Name", group["name"]), ("Email address", group["email"] or ""),
                     ("Members", comma_list(group["members"])), *nested])


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, under a header and a rule."""
    shown = [[printable(str(cell)) for cell in row] for row in rows]
    widths = [max(map(len, column)) for column in zip(headers, *shown)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, shown)])


def users_table(users: Sequence[Mapping[str, Any]]) -> str:
    rows = [(u["name"], u["fullname"], u["email"], yes_no(u["active"]), u["resource_type"])
            for u in users]
    return table(("Username", "Full name", "Email address", "Active", "Resource type"), rows)


def groups_table(groups: Sequence[Mapping[str, Any]]) -> str:
    rows = [(g["name"], g["email"] or "", comma_list(g["members"])) for g in groups]
    return table(("Group", "Email address", "Members"), rows)


def orphans(data: Mapping[str, Any]) -> str:
    stores = [(s["guid"], s["owner"], human_size(s["size"])) for s in data["stores"]]
    users = [(name,) for name in data["users"]]
    return "\n".join([
        "Stores without users:", table(("Store GUID", "Last owner", "Size"), stores), "",
        "Users without stores:", table(("Username",), users)])
