"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FACES_ENV = "DOJOGUARD_FACES_DIR"


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The folder of real photographs with ground truth (set DOJOGUARD_FACES_DIR).

    The photographs are not part of the project; tests that need them are
    skipped, saying why, when the setting is missing.
    """
    value = os.environ.get(FACES_ENV)
    if not value:
        pytest.skip(f"{FACES_ENV} is not set: point it at the real photographs folder to run face tests")
    path = Path(value)
    if not (path / "dlib-pascal").is_dir():
        pytest.skip(f"{FACES_ENV}={value} does not hold dlib-pascal/: face tests skipped")
    return path


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server of this test session's own (tests/support/postgres.py)."""
    from tests.support.postgres import PostgresServer, require_server

    server = PostgresServer(require_server()).init().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def central_dsn(postgres) -> str:
    """The superuser's DSN of a new, empty database (a trust's central store)."""
    return postgres.create_database()


@pytest.fixture(scope="session")
def state_dsn(postgres) -> str:
    """One database for every test's learned state on PostgreSQL: each test's schools have schemas of their own."""
    return postgres.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def open_state(request, tmp_path):
    """Opens the proxy's learned state on each backend in turn (tests/support/state.py); the same name reopens it."""
    from tests.support.state import StateOpener

    dsn = request.getfixturevalue("state_dsn") if request.param == "postgresql" else None
    opener = StateOpener(request.param, tmp_path, dsn)
    yield opener
    opener.close()
