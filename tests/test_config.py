"""Settings: one schema, read from flags > environment > TOML file > defaults."""

from __future__ import annotations

import json

import pytest

from mr_engine.config import ConfigError, Settings, load_settings, parse_duration, parse_size
from mr_engine.core.passwords import hash_password, verify_password

from mr_engine.testing import commands
from mr_engine.testing.paths import BIN


def test_defaults_work_out_of_the_box(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({}, environ={"MR_ENGINE_SYSTEM_CONFIG": str(tmp_path / "none")})
    assert settings.database_url == f"sqlite:///{tmp_path}/var/mr-engine.db"
    assert settings.home == str(tmp_path / "var")
    assert settings.lmtp_listen == ("127.0.0.1:2003",)
    assert settings.default_timezone == "UTC" and settings.dedupe_window == 86400
    assert all(source.startswith("default") for source in settings.sources.values())


def test_precedence_is_flags_then_environment_then_file_then_default(tmp_path):
    conf = tmp_path / "mr.toml"
    conf.write_text('hostname = "from-file"\ndefault_domain = "file.example"\n'
                    'max_message_size = "10m"\n')
    env = {"MR_ENGINE_HOSTNAME": "from-env", "MR_ENGINE_DEFAULT_DOMAIN": "env.example",
           "MR_ENGINE_CONFIG": str(conf)}
    settings = load_settings({"hostname": "from-flag", "default_domain": None}, environ=env)
    assert settings.hostname == "from-flag"
    assert settings.default_domain == "env.example"
    assert settings.max_message_size == 10 * 1024 * 1024
    assert settings.sources["hostname"] == "command line"
    assert settings.sources["default_domain"] == "environment MR_ENGINE_DEFAULT_DOMAIN"
    assert settings.sources["max_message_size"] == f"file {conf}"


@pytest.mark.parametrize("key, value", [
    ("MR_ENGINE_DEFAULT_TIMEZONE", "Mars/Olympus"),
    ("MR_ENGINE_MAX_MESSAGE_SIZE", "huge"),
    ("MR_ENGINE_DEDUPE_WINDOW", "-5s"),
    ("MR_ENGINE_LMTP_LISTEN", "nohostport"),
    ("MR_ENGINE_SMARTHOST_STARTTLS", "perhaps"),
    ("MR_ENGINE_MAX_SESSIONS", "many"),
    ("MR_ENGINE_MAX_SESSIONS", "0"),
    ("MR_ENGINE_DELIVERY_BATCH_SIZE", "-1"),
    ("MR_ENGINE_LMTP_SOCKET_MODE", "rw-rw----"),
    ("MR_ENGINE_LMTP_SOCKET_MODE", "01777"),
    ("MR_ENGINE_LMTP_SOCKET_USER", "no-such-user"),
    ("MR_ENGINE_LMTP_SOCKET_GROUP", "no-such-group"),
    ("MR_ENGINE_STORE_GROUP", "no-such-group"),
])
def test_a_bad_value_is_an_error_naming_the_key(key, value):
    name = key.removeprefix("MR_ENGINE_").lower()
    with pytest.raises(ConfigError, match=name):
        load_settings({}, environ={key: value})


def test_unknown_keys_and_broken_files_are_refused(tmp_path):
    conf = tmp_path / "bad.toml"
    conf.write_text("no_such_key = 1\n")
    with pytest.raises(ConfigError, match="no_such_key"):
        load_settings({}, environ={}, config_file=str(conf))
    conf.write_text("hostname = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, environ={}, config_file=str(conf))


@pytest.mark.parametrize("text, seconds", [("90", 90), ("30s", 30), ("15m", 900),
                                           ("24h", 86400), ("5d", 432000), ("0", 0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text, size", [("1048576", 1048576), ("512k", 524288),
                                        ("50m", 52428800), ("1g", 1073741824)])
def test_sizes(text, size):
    assert parse_size(text) == size


def test_mr_engine_config_prints_values_and_sources(tmp_path):
    env = {"MR_ENGINE_HOSTNAME": "mx.example", "MR_ENGINE_SMARTHOST_PASSWORD": "s3cret"}
    out = commands.run([str(BIN / "mr-engine"), "config", "--json"], env=env,
                       capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    assert rows["hostname"] == {"value": "mx.example",
                                "source": "environment MR_ENGINE_HOSTNAME"}
    assert rows["smarthost_password"]["value"] == "********"
    bad = commands.run([str(BIN / "mr-engine"), "config"],
                       env={"MR_ENGINE_DEFAULT_TIMEZONE": "Nowhere/City"},
                       capture_output=True, text=True)
    assert bad.returncode == 2 and "default_timezone" in bad.stderr


@pytest.mark.parametrize("raw, mode", [("0660", 0o660), ("660", 0o660), ("0o600", 0o600),
                                       (0o640, 0o640), ("0", 0)])
def test_socket_modes_are_octal(raw, mode):
    assert load_settings({"lmtp_socket_mode": raw}, environ={}).lmtp_socket_mode == mode


def test_users_and_groups_are_names_or_ids_kept_as_given():
    settings = load_settings({}, environ={"MR_ENGINE_LMTP_SOCKET_USER": "root",
                                          "MR_ENGINE_LMTP_SOCKET_GROUP": "4242",
                                          "MR_ENGINE_STORE_GROUP": " daemon "})
    assert (settings.lmtp_socket_user, settings.lmtp_socket_group, settings.store_group) \
        == ("root", "4242", "daemon")


def test_mr_engine_config_prints_the_socket_mode_in_octal():
    out = commands.run([str(BIN / "mr-engine"), "config", "--json"],
                       env={"MR_ENGINE_LMTP_SOCKET_MODE": "600"},
                       capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["lmtp_socket_mode"]["value"] == "0600"


def test_settings_replace_keeps_everything_else():
    base = Settings(hostname="a")
    assert base.replace(max_sessions=3).hostname == "a"


def test_passwords_are_stored_as_salted_scrypt_hashes():
    first, second = hash_password("secret"), hash_password("secret")
    assert first != second and "secret" not in first and first.startswith("scrypt$")
    assert verify_password("secret", first) and not verify_password("Secret", first)
    assert not verify_password("secret", "garbage")


def test_the_settings_dataclass_defaults_match_the_schema():
    assert Settings() == load_settings({}, environ={})


def test_ldap_server_type_ad_chooses_kopanos_active_directory_defaults_unless_set():
    settings = load_settings({"ldap_loginname_attribute": "uid"},
                             environ={"MR_ENGINE_LDAP_SERVER_TYPE": "ad",
                                      "MR_ENGINE_LDAP_URI": "ldap://a:389 ldaps://b"})
    assert (settings.ldap_user_unique_attribute, settings.ldap_user_unique_attribute_type,
            settings.ldap_groupmembers_attribute, settings.ldap_quota_multiplier) \
        == ("objectGUID", "binary", "member", 1048576)
    assert settings.ldap_loginname_attribute == "uid"  # set: kept
    assert settings.sources["ldap_user_unique_attribute"] == "default for ldap_server_type = ad"
    assert settings.ldap_uri == ("ldap://a:389", "ldaps://b")
    assert Settings().ldap_user_unique_attribute == "uidNumber"  # openldap's


def test_ldap_settings_refuse_bad_values_naming_the_key():
    for key, value in [("ldap_uri", "http://x"), ("ldap_server_type", "novell"),
                       ("ldap_groupmembers_attribute_type", "cn")]:
        with pytest.raises(ConfigError, match=key):
            load_settings({key: value}, environ={})


def test_mr_engine_config_masks_the_ldap_bind_password():
    out = commands.run([str(BIN / "mr-engine"), "config", "--json"],
                       env={"MR_ENGINE_LDAP_BIND_PASSWD": "s3cret"},
                       capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["ldap_bind_passwd"]["value"] == "********"


def test_user_plugin_ldap_needs_its_servers_and_search_base():
    with pytest.raises(ConfigError, match="user_plugin = ldap needs ldap_uri"):
        load_settings({"user_plugin": "ldap"}, environ={})
    with pytest.raises(ConfigError, match="needs ldap_search_base"):
        load_settings({"user_plugin": "ldap", "ldap_uri": "ldap://x"}, environ={})
