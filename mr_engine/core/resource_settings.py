"""The settings of a resource (a room, equipment), each declared once, here.

Every field of ``ResourceSettings`` is one setting: its name as the booking rules read it
(the field), its type (the annotation), its default, and in ``setting(...)`` the rest of its
declaration: the ``mailboxes`` column that keeps it (also the ``Mailbox`` attribute and the
keyword of ``directory.update_user``), its ``kopano-cli`` flag and help text, the label of
``kopano-cli --user`` and the key of its ``--json``. The store builds its columns from these
declarations (``store.models``), the directory its defaults and the fields it accepts,
``kopano-cli`` its flags, its display and its JSON; ``ResourceSettings`` itself is what the
booking rules (``core.policy``) get.

A new setting costs a field here, a migration adding its column (with ``server_default``
so that existing mailboxes get the default), and whatever reads it (a booking rule). A
setting whose text must be checked declares its ``parse`` (the working hours); a list (who
may book) is ``listed``: a comma list in a text column, a tuple of entries to the rules, a
list in JSON.

Pure data: no SQLAlchemy, no clock.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from dataclasses import dataclass
from typing import Any, Callable, get_type_hints

from mr_engine.core import who_may_book as access
from mr_engine.core import working_hours as hours

RESOURCE_TYPES = ("none", "room", "equipment")
# What the calendar feed and the pages show of a booking (``calendar_details``).
CALENDAR_DETAILS = ("busy", "subject", "full")


def _none_if_zero(minutes: int) -> str:
    return str(minutes) if minutes else "0 (none)"


def _unknown_if_zero(seats: int) -> str:
    return str(seats) if seats else "0 (unknown)"


def _percent(value: int) -> str:
    return f"{value}%"


def _text_or_none(text: str) -> str:
    return text or "none"


LIST_HELP = ("comma-separated: user names or addresses, group:NAME, domain:DOMAIN, internal, "
             "all, none")


def setting(default: Any, **declaration: Any) -> Any:
    """A field of ``ResourceSettings``: its default, and the rest of its ``Setting``."""
    return dataclasses.field(default=default, metadata={"setting": declaration})


@dataclass(frozen=True, kw_only=True)
class ResourceSettings:
    """A resource's settings, in the order ``kopano-cli`` lists them."""

    accept: bool = setting(
        False, column="mr_accept", flag="--mr-accept", json="mr_accept",
        label="Auto-accept meeting requests",
        help="(resource) auto-accept meeting requests: yes/no")
    decline_conflict: bool = setting(
        False, column="mr_decline_conflict", flag="--mr-decline-conflict",
        json="mr_decline_conflict", label="Decline conflicting",
        help="(resource) decline meeting requests for conflicting times: yes/no")
    decline_recurring: bool = setting(
        False, column="mr_decline_recurring", flag="--mr-decline-recurring",
        json="mr_decline_recurring", label="Decline recurring",
        help="(resource) decline recurring meeting requests: yes/no")
    # Kopano's --mr-process: book and file the request, but send no reply (an
    # auto-accepting resource replies whatever this says).
    process: bool = setting(
        False, column="mr_process", flag="--mr-process", json="mr_process",
        label="Auto-process meeting requests",
        help="(resource) book meeting requests and file them without replying: yes/no")
    kind: str = setting(
        "none", column="resource_type", flag="--resource-type", json="resource_type",
        label="Resource type", help="room, equipment or none (a user)",
        choices=RESOURCE_TYPES, length=16)
    capacity: int = setting(
        1, column="resource_capacity", flag="--resource-capacity", json="resource_capacity",
        label="Resource capacity", help="(resource) how many at once, >= 1",
        metavar="N", minimum=1)
    # <= 0 (only through the directory, not the flag): no limit.
    booking_window_days: int = setting(
        180, column="mr_booking_window_days", flag="--mr-booking-window",
        json="mr_booking_window", label="Booking window (days)",
        help="(resource) days ahead that may be booked, >= 1", metavar="DAYS", minimum=1)
    max_duration_minutes: int = setting(
        0, column="mr_max_duration", flag="--mr-max-duration", json="mr_max_duration",
        label="Max duration (minutes)", help="(resource) longest meeting in minutes, 0 = no limit",
        metavar="MINUTES", minimum=0, show=_none_if_zero)
    max_conflict_instances: int = setting(
        0, column="mr_max_conflict_instances", flag="--mr-max-conflict-instances",
        json="mr_max_conflict_instances", label="Max conflicting instances",
        help="(resource) conflicting instances of a recurring meeting tolerated",
        metavar="N", minimum=0)  # 0: not set
    conflict_percentage: int = setting(
        0, column="mr_conflict_percentage", flag="--mr-conflict-percentage",
        json="mr_conflict_percentage", label="Conflict percentage",
        help="(resource) percentage of conflicting instances tolerated, 0..100",
        metavar="PERCENT", minimum=0, maximum=100, show=_percent)  # 0: not set
    # busy: "Busy" only; subject: + summary and organizer's name; full: + address, attendees.
    calendar_details: str = setting(
        "busy", column="mr_calendar_details", flag="--mr-calendar-details",
        json="mr_calendar_details", label="Calendar details",
        help="(resource) what the feed and pages show: busy, subject or full",
        choices=CALENDAR_DETAILS, length=16)
    # Seats of a room (the people it holds), unlike capacity (bookings at once).
    seats: int = setting(
        0, column="resource_seats", flag="--resource-seats", json="resource_seats",
        label="Resource seats", help="(room) people it seats, 0 = unknown",
        metavar="N", minimum=0, show=_unknown_if_zero)
    enforce_seats: bool = setting(
        False, column="mr_enforce_seats", flag="--mr-enforce-seats", json="mr_enforce_seats",
        label="Enforce seats",
        help="(room) decline requests inviting more people than it seats: yes/no")
    # A declined single meeting also gets an iTIP COUNTER with the nearest free time.
    propose_time: bool = setting(
        True, column="mr_propose_time", flag="--mr-propose-time", json="mr_propose_time",
        label="Propose a free time",
        help="(resource) answer a conflicting single meeting with a COUNTER proposing the "
             "nearest free time: yes/no")
    # Who may book (core.who_may_book): who asks, who books at once, who with approval.
    verify_organizer: str = setting(
        "match", column="mr_verify_organizer", flag="--mr-verify-organizer",
        json="mr_verify_organizer", label="Verify organizer",
        help="(resource) when the organizer counts as the one asking: none, match (it is "
             "From, Sender or envelope sender) or authenticated (and a trusted "
             "Authentication-Results vouches for it)",
        choices=access.VERIFY_LEVELS, length=16)
    book_in: tuple[str, ...] = setting(
        ("all",), column="mr_book_in", flag="--mr-book-in", json="mr_book_in",
        label="Book-in policy", help=f"(resource) who books automatically; {LIST_HELP}",
        metavar="LIST", parse=access.normalize, listed=True)
    request_in: tuple[str, ...] = setting(
        ("none",), column="mr_request_in", flag="--mr-request-in", json="mr_request_in",
        label="Request-in policy",
        help=f"(resource) who books with a delegate's approval; {LIST_HELP}",
        metavar="LIST", parse=access.normalize, listed=True)
    allow_external: bool = setting(
        True, column="mr_allow_external", flag="--mr-allow-external",
        json="mr_allow_external", label="Allow external organizers",
        help="(resource) organizers outside the local domains may book: yes/no")
    # When it may be booked.
    working_hours: str = setting(
        hours.ALWAYS, column="mr_working_hours", flag="--mr-working-hours",
        json="mr_working_hours", label="Working hours",
        help="(resource) when it may be booked, in its time zone, e.g. 'Mon-Thu 08:00-18:00, "
             "Fri 08:00-14:00'; none = always", metavar="SPEC",
        parse=hours.normalize, length=255)
    min_duration_minutes: int = setting(
        0, column="mr_min_duration", flag="--mr-min-duration", json="mr_min_duration",
        label="Min duration (minutes)", help="(resource) shortest meeting in minutes, 0 = any",
        metavar="MINUTES", minimum=0, show=_none_if_zero)
    # What the replies say: text appended to every reply's text part.
    response_text: str = setting(
        "", column="mr_response_text", flag="--mr-response-text", json="mr_response_text",
        label="Response text",
        help="(resource) text added to every reply, read from FILE or - (stdin); none = no text",
        metavar="FILE|-|none", from_file=True, show=_text_or_none)
    # Approval by delegates (the delegates themselves: kopano-cli --mr-add-delegate).
    approval_timeout_hours: int = setting(
        168, column="mr_approval_timeout", flag="--mr-approval-timeout",
        json="mr_approval_timeout", label="Approval timeout (hours)",
        help="(resource) hours a request waits for a delegate's decision, >= 1",
        metavar="HOURS", minimum=1)
    notify_delegates: bool = setting(
        False, column="mr_notify_delegates", flag="--mr-notify-delegates",
        json="mr_notify_delegates", label="Notify delegates",
        help="(resource) tell the delegates of each automatic booking: yes/no")


@dataclass(frozen=True)
class Setting:
    """One declaration, as the store and ``kopano-cli`` read it."""

    name: str  # the field of ResourceSettings
    value_type: type  # of the column: bool, int or str
    default: Any  # of the column
    column: str  # mailboxes column and Mailbox attribute
    flag: str  # kopano-cli flag
    json: str  # key in kopano-cli --user --json
    label: str  # label in kopano-cli --user
    help: str  # kopano-cli --help
    metavar: str = ""  # of the flag's value (a switch is yes|no, a choice lists them)
    minimum: int = 0  # bounds of the flag's value (int); no maximum when None
    maximum: int | None = None
    choices: tuple[str, ...] = ()  # the values there are (str); the directory checks them
    length: int = 0  # of a str column; 0: unbounded text
    show: Callable[[Any], str] | None = None  # the --user display; None: yes/no, or as it is
    # Text in (the flag's, the directory's) to the stored value; ValueError says why not.
    parse: Callable[[str], Any] | None = None
    # A comma list in a str column: the field is the tuple of its entries, JSON a list.
    listed: bool = False
    from_file: bool = False  # the flag names a file (- for stdin, none for no text)

    def load(self, stored: Any) -> Any:
        """The field's value from the column's."""
        return access.entries(stored) if self.listed else self.value_type(stored)


def _declaration(f: dataclasses.Field, value_type: type) -> Setting:
    declared = f.metadata["setting"]
    if declared.get("listed"):
        return Setting(f.name, str, ",".join(f.default), **declared)
    return Setting(f.name, value_type, f.default, **declared)


def _declarations() -> tuple[Setting, ...]:
    types = get_type_hints(ResourceSettings)
    return tuple(_declaration(f, types[f.name]) for f in dataclasses.fields(ResourceSettings))


SETTINGS: tuple[Setting, ...] = _declarations()


def defaults() -> dict[str, Any]:
    """Each setting's default, by column: a new mailbox's settings."""
    return {s.column: s.default for s in SETTINGS}


COLUMNS: tuple[str, ...] = tuple(s.column for s in SETTINGS)
_STORED = operator.attrgetter(*COLUMNS)


def settings_of(record: Any) -> ResourceSettings:
    """The settings of anything carrying them as column-named attributes (a ``Mailbox``)."""
    return settings_from(_STORED(record))


def settings_from(stored: tuple[Any, ...]) -> ResourceSettings:
    """The settings of their stored values, one for each of ``COLUMNS`` in its order.

    Typed once for each set of stored values: a meeting request asks several times, and
    typing every setting costs more than reading the columns.
    """
    try:
        return _typed(stored)
    except TypeError:  # an unhashable value (a list given by a caller): typed uncached
        return _typed.__wrapped__(stored)


@functools.lru_cache(maxsize=256)
def _typed(stored: tuple[Any, ...]) -> ResourceSettings:
    return ResourceSettings(**{s.name: s.load(v) for s, v in zip(SETTINGS, stored)})


def invalid_choice(column: str, value: Any) -> str | None:
    """Why ``value`` cannot be the setting in ``column``, or None (unknown columns too)."""
    declared = next((s for s in SETTINGS if s.column == column), None)
    if declared is None or not declared.choices or value in declared.choices:
        return None
    return f"{declared.label.lower()} must be one of {', '.join(declared.choices)}"


def parsed(column: str, value: Any) -> Any:
    """``value`` as the setting in ``column`` stores it (a list normalized); ValueError,
    naming the setting, when it is not one. Values of other columns pass unchanged."""
    declared = next((s for s in SETTINGS if s.column == column), None)
    if declared is None or declared.parse is None:
        return value
    try:
        return declared.parse(value)
    except ValueError as exc:
        raise ValueError(f"{declared.label.lower()}: {exc}") from None
