"""Kopano's features (imap, pop3, mobile, ...): which a user has, and what changing them does.

Kopano's admin manual §8.7, table 8.1: a feature enabled for the user is on; one disabled for
the user is off; with neither, it is off when the server disables it (``disabled_features``)
and on otherwise. The user's two lists come from the store's columns (``user_plugin = db``,
``kopano-cli --add-feature`` / ``--remove-feature``) or from LDAP (kopanoEnabledFeatures /
kopanoDisabledFeatures); the engine only keeps and shows them, it serves none of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Kopano's list (common/ECFeatureList.h): the features its services check before serving.
KOPANO_FEATURES = ("imap", "pop3", "mobile", "outlook", "webapp")
DEFAULT_DISABLED = ("imap", "pop3", "mobile")  # Kopano's server.cfg default


def parse_names(text: str | Iterable[str]) -> tuple[str, ...]:
    """Feature names from a space- or comma-separated list (or a list of them), lower-cased,
    in order, each once; ValueError names one that is not Kopano's."""
    items = re.split(r"[\s,]+", text) if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(item.strip().lower() for item in items if item.strip()))
    for name in names:
        check(name)
    return names


def check(name: str) -> str:
    """The feature ``name`` lower-cased; ValueError if Kopano has no such feature (a typo
    would otherwise switch nothing, silently)."""
    feature = name.strip().lower()
    if feature not in KOPANO_FEATURES:
        raise ValueError(f"unknown feature {name!r} (Kopano's features: "
                         f"{', '.join(KOPANO_FEATURES)})")
    return feature


@dataclass(frozen=True)
class UserFeatures:
    """What is set for one user: explicitly enabled, explicitly disabled (never both)."""

    enabled: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()


def from_columns(enabled: str | None, disabled: str | None) -> UserFeatures:
    """The user's features as the store keeps them: two comma lists."""
    return UserFeatures(_column(enabled), _column(disabled))


def _column(text: str | None) -> tuple[str, ...]:
    # Read leniently: a name Kopano has not (an older store's) is kept, not an error.
    return tuple(sorted({f for f in (text or "").split(",") if f}))


def to_column(names: Iterable[str]) -> str:
    return ",".join(sorted(set(names)))


def effective(user: UserFeatures, globally_disabled: Iterable[str]) -> dict[str, bool]:
    """Table 8.1: each feature (Kopano's, and any other the user names) on or off."""
    off = set(globally_disabled)
    names = dict.fromkeys([*KOPANO_FEATURES, *sorted({*user.enabled, *user.disabled})])
    return {name: _state(name, user, off) for name in names}


def _state(name: str, user: UserFeatures, globally_disabled: set[str]) -> bool:
    if name in user.enabled:
        return True
    if name in user.disabled:
        return False
    return name not in globally_disabled


def enabled_names(states: dict[str, bool]) -> list[str]:
    """The features that are on, sorted: Kopano's ``Features:`` line."""
    return sorted(name for name, on in states.items() if on)


def enable(user: UserFeatures, name: str) -> UserFeatures:
    """``--add-feature``: explicitly on for the user, whatever the server's default, as
    Kopano's User.add_feature moves it from the disabled list to the enabled one."""
    return UserFeatures(tuple(sorted({*user.enabled, name})),
                        tuple(f for f in user.disabled if f != name))


def disable(user: UserFeatures, name: str) -> UserFeatures:
    """``--remove-feature``: explicitly off for the user (Kopano puts it on the disabled
    list), so that a feature the server enables can be taken from one user."""
    return UserFeatures(tuple(f for f in user.enabled if f != name),
                        tuple(sorted({*user.disabled, name})))
