"""contrib/: the sample configuration in step with the settings schema, the systemd unit
accepted by systemd-analyze, the Postfix transports matching the engine's defaults."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from mr_engine.cli.cmd_config import sample
from mr_engine.config import Settings, load_settings
from mr_engine.testing.paths import BIN, checkout_of

CONTRIB = checkout_of(__file__) / "contrib"
PACKAGED = {"MR_ENGINE_HOME": "/var/lib/mr-engine",
            "MR_ENGINE_SYSTEM_CONFIG": "/nonexistent/mr-engine.toml"}


def test_the_sample_configuration_is_in_step_with_the_schema():
    expected = sample(load_settings({}, environ=PACKAGED))
    assert (CONTRIB / "mr-engine.toml").read_text() == expected, \
        "contrib/mr-engine.toml is out of step: regenerate it with " \
        "MR_ENGINE_HOME=/var/lib/mr-engine mr-engine config --sample > contrib/mr-engine.toml"


def test_mr_engine_config_sample_prints_it():
    done = subprocess.run([str(BIN / "mr-engine"), "config", "--sample"], env=PACKAGED,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == (CONTRIB / "mr-engine.toml").read_text()


def test_every_default_in_the_sample_is_one_the_engine_takes(tmp_path):
    text = (CONTRIB / "mr-engine.toml").read_text()
    uncommented = tmp_path / "mr-engine.toml"
    uncommented.write_text(re.sub(r"(?m)^# (\w+ = )", r"\1", text))
    settings = load_settings({}, environ={"MR_ENGINE_CONFIG": str(uncommented)})
    assert settings.home == "/var/lib/mr-engine"
    defaults = Settings(home="/var/lib/mr-engine")
    assert settings == defaults
    assert set(settings.sources.values()) == {f"file {uncommented}"}  # every key is in it


def test_the_unit_file_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (CONTRIB / "mr-engine.service").read_text()
    assert "ExecStart=/usr/local/bin/mr-engine serve" in unit
    assert "Environment=MR_ENGINE_HOME=/var/lib/mr-engine" in unit
    for option in ("User=mr-engine", "ProtectSystem=strict", "PrivateTmp=yes",
                   "NoNewPrivileges=yes", "ProtectHome=yes", "Restart=on-failure",
                   "ReadWritePaths=/var/lib/mr-engine"):
        assert f"\n{option}\n" in unit
    # verify checks that the program exists: the installed one, here.
    copy = tmp_path / "mr-engine.service"
    copy.write_text(unit.replace("/usr/local/bin/mr-engine", str(BIN / "mr-engine")))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mr-engine.service" not in done.stderr, done.stderr  # no complaint about it


def test_the_postfix_transports_name_the_engine_s_listener():
    main_cf = (CONTRIB / "postfix" / "main.cf").read_text()
    tcp = Settings().lmtp_listen[0]
    assert f"\nvirtual_transport = lmtp:inet:{tcp}\n" in main_cf
    assert "\n#virtual_transport = lmtp:unix:private/mr-engine\n" in main_cf
    assert 'lmtp_listen = "unix:/var/spool/postfix/private/mr-engine"' in main_cf
    assert "lmtp" in (CONTRIB / "postfix" / "master.cf").read_text()
