"""Text layouts of ``kopano-cli``: details and listings as Kopano's manual shows them.

Every function takes the plain data that ``--json`` prints (dicts and lists of str, int, bool
and ``None``) and returns text, so the two outputs can never disagree. Every value is shown
through ``printable``: a full name or an address with a newline or an ESC stays one visible
cell, and only the layout's own spaces and newlines reach the terminal.

The layouts are Kopano's (User management, §8.2): ``Label:`` padded to a column, then the
value; the quota block indented under its heading; groups and users as tables under
``Groups (N):`` / ``Users (N):``. Our own lines (the resource settings) come after Kopano's,
so a script reading Kopano's lines finds them where it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from mr_engine.core.features import enabled_names
from mr_engine.core.printable import printable
from mr_engine.core.resource_settings import SETTINGS, Setting

MB = 1024 * 1024
INDENT = "    "
USER_COLUMN = 30  # Kopano's: values of --user start after a label padded to 30
GROUP_COLUMN = 16  # and of --group after 16


def megabytes(size: int) -> str:
    """Kopano's sizes: ``462.40 MB``."""
    return f"{size / MB:.2f} MB"


def quota(size: int) -> str:
    return megabytes(size) if size else "unlimited"


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def comma_list(values: Sequence[str]) -> str:
    return ", ".join(values)


def administrator(level: int) -> str:
    return "yes (system)" if level >= 2 else yes_no(level == 1)


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


def labelled(rows: Sequence[tuple[str, str]], column: int = USER_COLUMN) -> list[str]:
    """``Label:`` padded to ``column``, a space, the value (a longer label pushes it on)."""
    return [f"{label + ':':<{column}} {printable(value)}".rstrip() for label, value in rows]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]],
          widths: Sequence[int], indent: str = "") -> list[str]:
    """Kopano's tables: cells left-aligned in at least ``widths`` columns, a dashed rule."""
    shown = [[printable(str(cell)) for cell in row] for row in rows]
    widths = [max(w, *(len(row[i]) for row in shown)) if shown else w
              for i, w in enumerate(widths)]

    def line(cells: Sequence[str]) -> str:
        return (indent + " ".join(c.ljust(w) for c, w in zip(cells, widths))).rstrip()

    rule = indent + "-" * (sum(widths) + len(widths) - 1)
    return [line(headers), rule, *map(line, shown)]


@dataclass(frozen=True)
class Report:
    """What a change says: ``said`` under --verbose only (Kopano's tool says nothing on
    success), ``shown`` always (what the admin needs, the new feed link)."""

    said: str
    shown: str = ""
    data: Any = None  # what --json prints, for a change that has data (--sync's summary)


# --- --user ------------------------------------------------------------------------------

_ACCEPT = SETTINGS[0]  # mr_accept: Kopano's "Auto-accept meeting requests"
_OURS = [s for s in SETTINGS if s is not _ACCEPT]


def _kopano_lines(user: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = [("Name", user["name"]), ("Full name", user["fullname"]),
            ("Email address", user["email"]), ("Active", yes_no(user["active"])),
            ("Administrator", administrator(user["admin_level"])),
            ("Address Book", user["address_book"]), ("Features", "; ".join(enabled_names(user["features"]))),
            ("Store", user["store"] or "none"), ("Store size", megabytes(user["store_size"])),
            ("Send-as", comma_list(user["sendas"])), ("Delegation", ""),
            (_ACCEPT.label, yes_no(user[_ACCEPT.json]))]
    if user[_ACCEPT.json]:
        # The real tool's two lines under an auto-accepting user: the inverse settings.
        rows += [(f"{INDENT}Accept conflicting", yes_no(not user["mr_decline_conflict"])),
                 (f"{INDENT}Accept recurring", yes_no(not user["mr_decline_recurring"]))]
    return rows + [("Out-Of-Office", out_of_office(user["out_of_office"]))]


def _quota_lines(user: Mapping[str, Any]) -> list[str]:
    rows = [(f"{INDENT}Quota overrides", yes_no(user["quota_overrides"])),
            (f"{INDENT}Warning level", quota(user["quota_warning"])),
            (f"{INDENT}Soft level", quota(user["quota_soft"])),
            (f"{INDENT}Hard level", quota(user["quota_hard"]))]
    return ["Current user store quota settings:", *labelled(rows)]


def _groups_lines(groups: Sequence[str], has_store: bool) -> list[str]:
    lines = [f"Groups ({len(groups)}):",
             *table(("Groupname",), [(g,) for g in groups], (16,), INDENT), ""]
    # Kopano lists the store's permissions next; mr-engine keeps none (no folder rights).
    return lines + (["Permissions:", ""] if has_store else [])


def _our_lines(user: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [("Time zone", user["timezone"]),
            *((s.label, _shown(s)(user[s.json])) for s in _OURS),
            ("Delegates", comma_list(user["mr_delegates"])),
            ("Calendar feed", user["calendar_feed"] or "none")]


def user_details(user: Mapping[str, Any]) -> str:
    return "\n".join([*labelled(_kopano_lines(user)), *_quota_lines(user),
                      *_groups_lines(user["groups"], user["store"] is not None),
                      *labelled(_our_lines(user))])


# --- --group and the listings --------------------------------------------------------------

def _users_table(title: str, users: Sequence[Mapping[str, Any]], store: bool) -> list[str]:
    """``TITLE(N):`` and the users: User, Full Name, Homeserver (and Store, for a group)."""
    headers = ("Username", "Fullname", "Homeserver", "Store") if store \
        else ("User", "Full Name", "Homeserver")
    rows = [(u["name"], u["fullname"], u["homeserver"], u.get("store") or "")[:len(headers)]
            for u in users]
    return [f"{title}({len(users)}):", *table(headers, rows, (16, 20, 20, 32)[:len(headers)]),
            ""]


def group_details(group: Mapping[str, Any]) -> str:
    rows = [("Name", group["name"]), ("Email address", group["email"] or ""),
            ("Address Book", "visible"), ("Send-as", "")]
    if group.get("member_groups"):
        rows.append(("Member groups", comma_list(group["member_groups"])))
    if group.get("mr_pool"):
        rows.append(("Pool", "yes (a meeting request books one free member)"))
    return "\n".join([*labelled(rows, GROUP_COLUMN),
                      *_users_table("Users ", group["users"], store=True)]).rstrip("\n")


def users_list(users: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(_users_table("User list for Default", users, store=False))


def groups_list(groups: Sequence[Mapping[str, Any]]) -> str:
    rows = [(g["name"],) for g in groups]
    return "\n".join([f"Group list for Default({len(groups)}):",
                      *table(("Groupname",), rows, (16,)), ""])


def stores_list(stores: Sequence[Mapping[str, Any]]) -> str:
    rows = [(s["guid"], s["user"] or ("(public)" if s["public"] else ""),
             megabytes(s["size"])) for s in stores]
    return "\n".join(table(("Store guid", "Username", "Store size"), rows, (32, 20, 16)))


def orphans(data: Mapping[str, Any]) -> str:
    """§8.2.3's layout: the stores without users, then the users without stores."""
    stores = [(s["guid"], s["owner"], s["last_modified_local"], megabytes(s["size"]))
              for s in data["stores"]]
    lines = ["Stores without users:",
             *table(("Store guid", "Guessed username", "Last modified", "Store size"), stores,
                    (32, 20, 16, 16)), ""]
    return "\n".join(lines + _users_table("Users without stores ", data["users_details"],
                                          store=False)).rstrip("\n")


def user_count(counts: Mapping[str, int]) -> str:
    """Kopano's user counts: right-aligned, under a heading."""
    rows = [("Active", "active"), ("Non-active", "non_active"), ("NA Users", "na_users"),
            ("NA Rooms", "na_rooms"), ("NA Equipment", "na_equipment"), ("Total", "total")]
    return "\n".join(["User counts:", f"\t{'':>12} {'Used':>10}", "\t" + "-" * 43,
                      *(f"\t{label:>12} {counts[key]:>10}" for label, key in rows)])
