"""Where the things the tests run and read are: the engine's console scripts, and the checkout
a test file is in (this package is installed, so it does not assume a checkout itself)."""

from __future__ import annotations

import sys
from pathlib import Path

# The console scripts (mr-engine, kopano-cli, ...) installed with the running interpreter.
BIN = Path(sys.executable).parent


def checkout_of(test_file: str) -> Path:
    """The checkout that holds ``test_file``: the parent of its folder (``tests/``), where
    ``fixtures/`` and ``bench/`` are too."""
    return Path(test_file).resolve().parent.parent
