"""The tests' command runner (``mr_engine.testing.commands``): a console script forked from the
zygote answers as the same script started fresh by ``subprocess.run`` does."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from mr_engine.testing import commands
from mr_engine.testing.paths import BIN
from mr_engine.testing.times import HOUR

MESSAGE = b"From: a@example.com\r\nTo: room@example.com\r\nSubject: x\r\n\r\nbody\r\n"


def store(tmp_path) -> dict[str, str]:
    """A store made before the comparison: its first command says it creates one."""
    env = {"MR_ENGINE_DATABASE_URL": f"sqlite:///{tmp_path}/s.db"}
    commands.run([str(BIN / "mr-engine"), "db", "upgrade"], env=env, capture_output=True,
                 check=True)
    return env


def both(args: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, ...]:
    """The command through the zygote, then fresh (``MR_ENGINE_TEST_ZYGOTE=0``)."""
    forked = commands.run(args, **kwargs)
    os.environ[commands.SWITCH] = "0"
    try:
        fresh = commands.run(args, **kwargs)
    finally:
        del os.environ[commands.SWITCH]
    return forked, fresh


def same(forked: subprocess.CompletedProcess, fresh: subprocess.CompletedProcess) -> None:
    assert (forked.args, forked.returncode, forked.stdout, forked.stderr) == \
        (fresh.args, fresh.returncode, fresh.stdout, fresh.stderr)


@pytest.mark.parametrize("args, status", [
    (["config", "--json"], 0),  # stdout
    (["config", "--no-such-flag"], 2),  # usage on stderr
    (["agenda", "nobody", "--start", "2026-01-01", "--end", "2026-01-02"], 1),  # an error
])
def test_the_same_output_and_status_as_a_fresh_process(tmp_path, args, status):
    env = {**store(tmp_path), "MR_ENGINE_HOSTNAME": "h.example"}
    forked, fresh = both([str(BIN / "mr-engine"), *args], env=env, capture_output=True, text=True)
    same(forked, fresh)
    assert forked.returncode == status and (forked.stdout if status == 0 else forked.stderr)


def test_stdin_in_bytes_and_text(tmp_path):
    env = store(tmp_path)
    accept = [str(BIN / "kopano-mr-accept"), "room"]
    same(*both(accept, input=MESSAGE, env=env, capture_output=True))
    forked, fresh = both(accept, input=MESSAGE.decode(), env=env, capture_output=True, text=True)
    same(forked, fresh)
    assert forked.returncode != 0 and "room" in forked.stderr  # no such resource, said so


def test_the_working_directory_the_environment_and_the_umask_are_the_callers(tmp_path):
    (tmp_path / "here.toml").write_text('hostname = "from-the-cwd.example"\n')
    env = {"MR_ENGINE_CONFIG": "here.toml"}  # relative: found from the working directory
    done = commands.run([str(BIN / "mr-engine"), "config", "--json"], env=env, cwd=tmp_path,
                        capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["hostname"]["value"] == "from-the-cwd.example"
    made = tmp_path / "made"
    script = tmp_path / "make"  # its file gets the mode the command's umask leaves
    script.write_text(f"#!/bin/sh\necho > {made}\n")
    script.chmod(0o755)
    previous = os.umask(0o077)
    try:
        commands.run([str(BIN / "kopano-cli"), "--create", "-u", "a", "--email", "a@example.com"],
                     env={"MR_ENGINE_DATABASE_URL": f"sqlite:///{tmp_path}/s.db",
                          "MR_ENGINE_CREATEUSER_SCRIPT": str(script)},
                     check=True, capture_output=True)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(made.stat().st_mode) == 0o600


def test_a_command_that_outlives_its_timeout_is_killed(tmp_path):
    slow = tmp_path / "slow"
    slow.write_text(f"#!/bin/sh\nsleep {HOUR.total_seconds():.0f}\n")
    slow.chmod(0o755)
    env = {"MR_ENGINE_DATABASE_URL": f"sqlite:///{tmp_path}/s.db",
           "MR_ENGINE_CREATEUSER_SCRIPT": str(slow), "MR_ENGINE_SCRIPT_TIMEOUT": "1h"}
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        commands.run([str(BIN / "kopano-cli"), "--create", "-u", "a", "--email", "a@example.com"],
                     env=env, capture_output=True, timeout=3)
    assert raised.value.timeout == 3 and raised.value.stderr is not None


def test_a_check_fails_as_subprocess_run_fails(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as raised:
        commands.run([str(BIN / "mr-engine"), "config", "--no-such-flag"], capture_output=True,
                     text=True, check=True)
    assert raised.value.returncode == 2 and "--no-such-flag" in raised.value.stderr


def test_a_working_directory_that_is_not_there_fails_as_subprocess_run_fails(tmp_path):
    with pytest.raises(FileNotFoundError):
        commands.run([str(BIN / "mr-engine"), "config"], cwd=tmp_path / "gone",
                     capture_output=True)


def test_each_command_is_a_process_of_its_own(tmp_path):
    """Module state does not carry over: the second run sees its own environment."""
    run = lambda name: commands.run(  # noqa: E731
        [str(BIN / "mr-engine"), "config", "--json"], env={"MR_ENGINE_HOSTNAME": name},
        capture_output=True, text=True, check=True)
    assert json.loads(run("one.example").stdout)["hostname"]["value"] == "one.example"
    assert json.loads(run("two.example").stdout)["hostname"]["value"] == "two.example"


def test_what_is_read_at_import_time_gets_a_zygote_of_its_own():
    first = commands._zygote({"LANG": "C.UTF-8"})
    assert commands._zygote({"LANG": "C.UTF-8", "MR_ENGINE_X": "1"}) is first
    assert commands._zygote({"LANG": "C.UTF-8", "PYTHONHASHSEED": "3"}) is not first
    assert commands._zygote({"LANG": "C.UTF-8", "TZ": "UTC"}) is not first
