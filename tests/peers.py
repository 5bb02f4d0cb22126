"""The real peers of the tests (PostgreSQL, slapd, Dovecot, Postfix, chromium): a test whose
peer is not installed is skipped with the reason, or fails where the peer's
``MR_ENGINE_TEST_REQUIRE_*`` variable is set (CI, ``.ci/run``)."""

from __future__ import annotations

import os

import pytest


def need(missing: str | None, variable: str) -> None:
    """Skip (or, with ``variable`` set, fail) the calling test if ``missing`` says why its
    peer cannot run here; nothing if it is None."""
    if missing and os.environ.get(variable):
        pytest.fail(missing)
    if missing:
        pytest.skip(missing)
