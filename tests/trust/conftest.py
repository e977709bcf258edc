"""A real PostgreSQL server for the trust tests: one per test session, a new database per test."""

from __future__ import annotations

import pytest

from tests.support.postgres import PostgresServer, require_server


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer(require_server()).init().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def central_dsn(postgres) -> str:
    """The superuser's DSN of a new, empty database (the trust's central store)."""
    return postgres.create_database()
