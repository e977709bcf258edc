"""A real local HTTP server standing in for ClassDojo's write endpoints, and the hold store on each backend."""

from __future__ import annotations

import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dojoguard.holds.store import HoldStore
from dojoguard.storage.postgresql import PostgreSQLDatabase, school_schema, to_format


class Upstream:
    def __init__(self):
        self.received: list[tuple[str, str, dict, bytes]] = []
        self.status = 200
        # Seconds to wait before answering (a ClassDojo that takes the request and goes quiet).
        self.delay = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                outer.received.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))
                if outer.delay:
                    import time
                    time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    server = Upstream()
    yield server
    server.close()


# -- the hold store on each backend ---------------------------------------------------------------

SCHOOL = "st-wilfrids"


class StoreOpener:
    """Opens hold stores on one backend; each ``open()`` is another connection to the same store.

    SQLite: ``holds.sqlite`` in the test's folder, its key in ``keys/`` beside it
    (``HoldStore.open``'s default). PostgreSQL: a school's ``holds`` schema in a
    database of the test's own, the key in the same ``keys/`` folder.
    """

    def __init__(self, backend: str, folder: Path, dsn: str | None = None):
        self.backend = backend
        self.folder = folder
        self.dsn = dsn
        self.key_path = folder / "keys" / "holds-seal.key"

    def open(self, school: str = SCHOOL) -> HoldStore:
        if self.backend == "sqlite":
            return HoldStore.open(self.folder / "holds.sqlite")
        database = PostgreSQLDatabase.open(self.dsn, schema=school_schema(school, "holds"))
        return HoldStore.on(database, key_path=self.key_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request, tmp_path) -> StoreOpener:
    """Opens the test's hold stores, on SQLite and again on PostgreSQL (a new database each time)."""
    if request.param == "sqlite":
        return StoreOpener("sqlite", tmp_path)
    return StoreOpener("postgresql", tmp_path, request.getfixturevalue("postgres").create_database())


class RawConnection:
    """A connection of its own to a store's database, with no dojoguard code: what an intruder would use.

    Statements use ``?`` placeholders on both backends; each one is committed
    at once on PostgreSQL, and on ``commit()`` on SQLite.
    """

    def __init__(self, store: HoldStore):
        database = store._db
        self.dialect = database.dialect
        if self.dialect == "sqlite":
            self.connection = sqlite3.connect(store.path)
            return
        import psycopg

        self.connection = psycopg.connect(database.dsn, autocommit=True)
        self.connection.execute(psycopg.sql.SQL("SET search_path TO {}").format(
            psycopg.sql.Identifier(database.schema)))

    def execute(self, statement: str, params=()):
        if self.dialect == "sqlite":
            return self.connection.execute(statement, params)
        return self.connection.execute(to_format(statement), tuple(params))

    def commit(self) -> None:
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()


def sql(store: HoldStore, statement: str, *args) -> None:
    """Run one statement on the store's database from outside dojoguard (a hand edit) and commit it."""
    db = RawConnection(store)
    try:
        db.execute(statement, args)
        db.commit()
    finally:
        db.close()
