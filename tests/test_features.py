"""Kopano's features (§8.7): table 8.1 as a pure function, the changes of --add-feature and
--remove-feature, and the ``disabled_features`` setting's values."""

from __future__ import annotations

import json

import pytest

from mr_engine.cli.kopano_cli import main
from mr_engine.config import ConfigError, load_settings
from mr_engine.core.features import (KOPANO_FEATURES, UserFeatures, disable, effective, enable,
                                     enabled_names, from_columns, parse_names, to_column)

# Table 8.1: (set for the user, disabled on the server) -> the feature is on.
TABLE_8_1 = [
    ("enabled", True, True),
    ("enabled", False, True),
    ("disabled", True, False),
    ("disabled", False, False),
    (None, True, False),
    (None, False, True),
]


@pytest.mark.parametrize("for_user,globally_disabled,on", TABLE_8_1)
def test_table_8_1(for_user, globally_disabled, on):
    user = UserFeatures(enabled=("imap",) if for_user == "enabled" else (),
                        disabled=("imap",) if for_user == "disabled" else ())
    states = effective(user, ["imap"] if globally_disabled else [])
    assert states["imap"] is on
    assert list(states) == list(KOPANO_FEATURES)


def test_the_default_server_and_an_untouched_user():
    states = effective(UserFeatures(), ("imap", "pop3", "mobile"))
    assert states == {"imap": False, "pop3": False, "mobile": False, "outlook": True,
                      "webapp": True}
    assert enabled_names(states) == ["outlook", "webapp"]


@pytest.mark.parametrize("start,change,name,after", [
    (UserFeatures(), enable, "imap", UserFeatures(("imap",), ())),
    (UserFeatures((), ("imap",)), enable, "imap", UserFeatures(("imap",), ())),
    (UserFeatures(("imap",), ()), enable, "imap", UserFeatures(("imap",), ())),
    (UserFeatures(("imap", "pop3"), ()), disable, "imap", UserFeatures(("pop3",), ("imap",))),
    (UserFeatures(), disable, "webapp", UserFeatures((), ("webapp",))),
])
def test_changes_move_a_feature_between_the_lists(start, change, name, after):
    assert change(start, name) == after


def test_columns_round_trip_and_an_older_stores_names_are_kept():
    user = from_columns("pop3,imap,", "custom")
    assert user == UserFeatures(("imap", "pop3"), ("custom",))
    assert to_column(user.enabled) == "imap,pop3"
    assert effective(user, ())["custom"] is False


@pytest.mark.parametrize("text,names", [
    ("imap pop3 mobile", ("imap", "pop3", "mobile")),
    ("IMAP, webapp,,imap", ("imap", "webapp")),
    ("", ()),
    (["pop3", "Outlook"], ("pop3", "outlook")),
])
def test_parse_names(text, names):
    assert parse_names(text) == names


def test_an_unknown_feature_is_an_error_naming_kopanos():
    with pytest.raises(ValueError, match="unknown feature 'imap4'.*imap, pop3, mobile"):
        parse_names("imap4")


def test_disabled_features_setting(tmp_path):
    away = {"MR_ENGINE_SYSTEM_CONFIG": str(tmp_path / "none.toml")}
    assert load_settings(environ=away).disabled_features == ("imap", "pop3", "mobile")
    env = {**away, "MR_ENGINE_DISABLED_FEATURES": "webapp,imap"}
    assert load_settings(environ=env).disabled_features == ("webapp", "imap")
    with pytest.raises(ConfigError, match="disabled_features.*unknown feature 'ftp'"):
        load_settings(environ={**away, "MR_ENGINE_DISABLED_FEATURES": "ftp"})


def _cli(capsys, db_url: str, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--database-url", db_url, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_kopano_cli_features_db_plugin(capsys, monkeypatch, db_url):
    """--add-feature / --remove-feature as explicit enable and disable over the server's
    disabled_features; --user shows table 8.1's result."""
    monkeypatch.setenv("MR_ENGINE_DISABLED_FEATURES", "imap pop3 mobile")
    assert _cli(capsys, db_url, "--create", "-u", "john", "--email", "john@example.com",
                "--add-feature", "pop3")[0] == 0
    assert _cli(capsys, db_url, "-u", "john", "--add-feature", "imap",
                "--remove-feature", "webapp")[:2] == (0, "")
    code, out, _ = _cli(capsys, db_url, "-u", "john", "--json")
    assert json.loads(out)["features"] == {"imap": True, "pop3": True, "mobile": False,
                                           "outlook": True, "webapp": False}
    assert "\nFeatures:                      imap; outlook; pop3\n" in \
        _cli(capsys, db_url, "-u", "john")[1]
    # The server's default changes nothing set for the user.
    monkeypatch.setenv("MR_ENGINE_DISABLED_FEATURES", "outlook webapp")
    states = json.loads(_cli(capsys, db_url, "-u", "john", "--json")[1])["features"]
    assert states == {"imap": True, "pop3": True, "mobile": True, "outlook": False,
                      "webapp": False}
    # A feature the user does not have, or one Kopano has not: exit 1, one line.
    for flag, name, said in (("--remove-feature", "outlook", "does not have the feature"),
                             ("--add-feature", "ftp", "unknown feature 'ftp'")):
        code, out, err = _cli(capsys, db_url, "-u", "john", flag, name)
        assert (code, out) == (1, "") and said in err and len(err.splitlines()) == 1
