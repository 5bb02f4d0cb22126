"""Each resource setting is declared once: its column, flag, display and JSON follow from it."""

from __future__ import annotations

import pytest

from mr_engine.cli import kopano_cli_format as fmt
from mr_engine.cli.kopano_cli import resource_details
from mr_engine.cli.kopano_cli_flags import build_parser
from mr_engine.core.resource_settings import SETTINGS, ResourceSettings, Setting, defaults
from mr_engine.store.directory import get_user
from mr_engine.store.models import Mailbox
from mr_engine.testing.accounts import ROOM, add_resource

NAMES = [s.name for s in SETTINGS]


def test_the_defaults_are_the_settings_of_a_new_resource() -> None:
    assert ResourceSettings() == ResourceSettings(**{s.name: s.load(s.default) for s in SETTINGS})
    assert defaults()["mr_booking_window_days"] == 180


@pytest.mark.parametrize("declared", SETTINGS, ids=NAMES)
def test_the_store_has_its_column(declared: Setting) -> None:
    column = Mailbox.__table__.columns[declared.column]
    assert not column.nullable and column.default.arg == declared.default
    assert column.type.python_type is declared.value_type


@pytest.mark.parametrize("declared", SETTINGS, ids=NAMES)
def test_kopano_cli_has_its_flag(declared: Setting) -> None:
    [action] = [a for a in build_parser()._actions if declared.flag in a.option_strings]
    assert (action.dest, action.help) == (declared.column, declared.help)


def test_details_and_display_list_every_setting_in_order() -> None:
    mailbox = Mailbox(**defaults())
    assert list(resource_details(mailbox)) == [s.json for s in SETTINGS]
    # --user shows auto-accept among Kopano's lines, the other settings after them, in order.
    assert [fmt._ACCEPT, *fmt._OURS] == list(SETTINGS)


def test_a_mailbox_reads_as_its_settings() -> None:
    mailbox = Mailbox(**{**defaults(), "resource_type": "equipment", "resource_capacity": 4})
    assert mailbox.resource_settings == ResourceSettings(kind="equipment", capacity=4)


def test_an_entity_reads_its_set_values_and_loads_expired_ones(db) -> None:
    add_resource(db, "room", ROOM, resource_type="equipment", resource_capacity=3)
    with db.write() as session:
        room = get_user(session, "room")
        assert room.resource_settings.capacity == 3
        room.resource_capacity = 5  # set, not flushed: the instance's value is the setting
        assert room.resource_settings.capacity == 5
        session.flush()
        session.expire(room)  # nothing loaded: the attributes load the row again
        assert "resource_capacity" not in room.__dict__
        assert room.resource_settings == ResourceSettings(kind="equipment", capacity=5, accept=True,
                                                          decline_conflict=True)
