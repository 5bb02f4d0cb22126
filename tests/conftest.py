"""Shared fixtures: a fixed clock, a fresh real database per test (SQLite and PostgreSQL), a
real SMTP smarthost and real OpenLDAP servers (``slapd``, ``ad_slapd``). The shared helpers
that are not fixtures are in ``mr_engine.testing``.

Tests that take ``db_url`` run once per backend. PostgreSQL comes from
``MR_ENGINE_TEST_PG_URL`` or from a throwaway cluster started here; each test gets a new
database cloned from a migrated template, so tests never see each other's data.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mr_engine.store.db import open_database
from mr_engine.testing import pgcluster, slapd as slapd_harness
from mr_engine.testing.smarthost import Smarthost
from mr_engine.testing.times import NOW

from .peers import need

_counter = itertools.count()


@pytest.fixture
def now() -> dt.datetime:
    return NOW


@pytest.fixture(scope="session")
def pg_server():
    """Base URL of a PostgreSQL server with a migrated template database."""
    url = os.environ.get("MR_ENGINE_TEST_PG_URL")
    cluster = None
    if not url:
        need(pgcluster.binaries_missing(), "MR_ENGINE_TEST_REQUIRE_PG")
        cluster = pgcluster.Cluster(durable=False)
        cluster.start()
        url = cluster.url
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    template = f"mr_tmpl_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{template}"'))
        conn.execute(text(f'CREATE DATABASE "{template}"'))
    migrated = open_database(make_url(url).set(database=template).render_as_string(False))
    migrated.dispose()
    yield admin, url, template
    admin.dispose()
    if cluster:
        cluster.stop()


def _pg_database(pg_server) -> Iterator[str]:
    """A database cloned from the template for one test, dropped after it. FILE_COPY (PG 15)
    copies the small template's files instead of writing them all into the WAL, about a
    quarter of the time; dropping keeps the cluster from growing by a database a test."""
    admin, url, template = pg_server
    name = f"mr_test_{os.getpid()}_{next(_counter)}"
    with admin.connect() as conn:
        copy = " STRATEGY FILE_COPY" if conn.dialect.server_version_info >= (15,) else ""
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{copy}'))
    yield make_url(url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:  # FORCE: whatever the test left connected
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    """A URL of an empty, migrated database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/store.db"
    else:
        yield from _pg_database(request.getfixturevalue("pg_server"))


def _start_slapd(kind: str = "openldap") -> slapd_harness.Slapd:
    """A new slapd with the tree ``kind`` (``mr_engine.testing.ldap_trees``); without the
    binaries the test is skipped, or fails where ``MR_ENGINE_TEST_REQUIRE_LDAP=1`` (CI)."""
    need(slapd_harness.missing(), "MR_ENGINE_TEST_REQUIRE_LDAP")
    return slapd_harness.Slapd(kind)


@pytest.fixture(scope="module")
def slapd():
    """A module's OpenLDAP server with Kopano's schema and tree; tests that change entries
    take ``fresh_slapd``."""
    with _start_slapd() as server:
        yield server


@pytest.fixture(scope="module")
def ad_slapd():
    """A module's Active Directory shaped server."""
    with _start_slapd("ad") as server:
        yield server


@pytest.fixture
def fresh_slapd():
    """An OpenLDAP server of the test's own, to change, stop or restart."""
    with _start_slapd() as server:
        yield server


@pytest.fixture
def db(db_url):
    database = open_database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def smarthost():
    """A real SMTP smarthost on loopback, recording what it accepts."""
    host = Smarthost().start()
    yield host
    host.stop()
