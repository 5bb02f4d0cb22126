"""The package as `pip install .` puts it on a machine: one import package, and its layers.

It is installed into a temporary directory (not editable: there delivery/ and cli/ really
are mr_engine.delivery and mr_engine.cli), then import-linter checks the contracts of
pyproject.toml's [tool.importlinter] on it: lower layers never import higher ones, the core
imports neither the database, the SMTP server nor the clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site-packages")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True,
                   timeout=300)
    return target


def test_the_only_top_level_import_package_is_mr_engine(installed):
    packages = {p.name for p in installed.iterdir()
                if p.is_dir() and not p.name.endswith((".dist-info", "__pycache__"))
                and p.name != "bin"}
    modules = {p.name for p in installed.glob("*.py")}
    assert (packages, modules) == ({"mr_engine"}, set())
    assert (installed / "mr_engine" / "delivery" / "lmtp.py").is_file()
    assert (installed / "mr_engine" / "cli" / "kopano_cli.py").is_file()
    versions = installed / "mr_engine" / "store" / "migrations" / "versions"
    assert sorted(p.name for p in versions.glob("0*.py"))[0] == "0001_initial_schema.py"


def test_the_import_contracts_hold(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), str(ROOT / "pyproject.toml")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
